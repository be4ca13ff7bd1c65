"""Crash-safe saves: SIGKILL in the middle of ``save`` and ``as_file``, and leftover cleanup.

A child process loads a file, changes its header (so the save must write) and
saves it over its own source (``save``) or into its private temp folder
(``as_file``); the parent kills it with SIGKILL at a random moment of that
save. Afterwards:

* the file is byte for byte the old version or the new one (digests), never torn;
* every other entry in the folder is a recognisable partial file of the killed
  child (``.{name}.{random}.{host}-{pid}.nlv-partial``);
* the next save into the folder removes those partials (once a few seconds
  old), and the next ``as_file`` run removes the killed children's folders;
* nothing that is not a leftover of ours is ever removed.

The default suite kills 12 times on a ~40 MB file; ``NLV_SLOW=1`` runs the big
version (``-m slow``): 64 kills, on a 320 MB ``.nii`` and a 40 MB ``.nii.gz``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import nilazyview as nlv
from nilazyview import handoff
from nilazyview.fs import leftovers
from nilazyview.fs.leftovers import HOST_TAG, MIN_AGE_S

SLOW = pytest.mark.skipif(not os.environ.get("NLV_SLOW"), reason="set NLV_SLOW=1 for long runs")
ARTIFACTS = os.path.join(os.path.dirname(__file__), "artifacts")

CHILD = textwrap.dedent(
    """
    import os, sys, time
    import nilazyview as nlv
    path, mode, descrip = sys.argv[1], sys.argv[2], sys.argv[3].encode()
    img = nlv.load(path)
    if mode == "save":  # toggle between two versions, saved over the source
        cur = bytes(img.header["descrip"]).rstrip(b"\\0")
        img.header["descrip"] = b"B" if cur == b"A" else b"A"
    else:
        img.header["descrip"] = descrip
    print("go", flush=True)
    t0 = time.perf_counter()
    if mode == "save":
        nlv.save(img, path)
        out = path
    else:
        out = nlv.as_file(img)
    print("done", time.perf_counter() - t0, out, flush=True)
    sys.stdin.read()  # wait to be killed or released (a completed as_file stays put)
    """
)


def digest(path: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(8 * 2**20):
            h.update(chunk)
    return h.hexdigest()


def make_versions(folder: str, shape: tuple[int, ...], gz: bool) -> dict:
    """Files 'A' and 'B' (the two versions the child toggles between) and 'C' (as_file's)."""
    ext = ".nii.gz" if gz else ".nii"
    rng = np.random.default_rng(0)
    arr = rng.standard_normal(shape, dtype=np.float32)
    base = os.path.join(folder, "base" + ext)
    nlv.save(nlv.Image(arr, np.diag([2.0, 2.0, 2.0, 1.0])), base)
    del arr
    out = {}
    src = base
    for tag in ("A", "B", "A2", "C"):
        img = nlv.load(src)
        img.header["descrip"] = tag[0].encode()
        dst = os.path.join(folder, f"v{tag}{ext}")
        nlv.save(img, dst)
        out[tag] = dst
        if tag in ("A", "B"):
            src = dst
    # the toggle is deterministic: saving A as B and B as A gives the same bytes
    assert digest(out["A2"]) == digest(out["A"])
    os.remove(out.pop("A2"))
    os.remove(base)
    return {k: (p, digest(p)) for k, p in out.items()}


def spawn(path: str, mode: str, tmpdir: str, descrip: str = "C") -> subprocess.Popen:
    cache = os.path.join(os.path.dirname(tmpdir), "cache")  # gzip indexes stay in the test
    env = dict(os.environ, NILAZYVIEW_TMPDIR=tmpdir, NILAZYVIEW_CACHE_DIR=cache)
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, path, mode, descrip],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )


def timed_run(path: str, mode: str, tmpdir: str) -> float:
    """One uninterrupted run: seconds the save (or as_file) took."""
    proc = spawn(path, mode, tmpdir)
    assert proc.stdout.readline().strip() == "go"
    done = proc.stdout.readline().split()
    proc.communicate("")
    assert done[0] == "done"
    return float(done[1])


def kill_during(path: str, mode: str, tmpdir: str, delay: float) -> tuple[int, bool]:
    """Start a child, SIGKILL it ``delay`` s into its save; (pid, finished before the kill)."""
    proc = spawn(path, mode, tmpdir)
    assert proc.stdout.readline().strip() == "go"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    return proc.pid, out.startswith("done")


def _partial_of(name: str, pid: int) -> bool:
    return leftovers.owner_of(name) == (HOST_TAG, pid) and name.endswith(".nlv-partial")


def run_kills(tmp_path, n_save: int, n_as_file: int, shape, gz: bool = False) -> dict:
    work = tmp_path / "work"
    temp = tmp_path / "temp"
    work.mkdir()
    temp.mkdir()
    versions = make_versions(str(tmp_path), shape, gz)
    target = str(work / os.path.basename(versions["A"][0]).replace("vA", "img"))
    os.replace(versions["A"][0], target)
    old_new = {versions["A"][1]: "A", versions["B"][1]: "B"}
    # bystanders that cleanup must never touch
    keep = {
        ".notes.nlv-partial.txt": b"user file",
        ".other.abcdefgh.nlv-partial": b"no owner record, fresh",
        f".live.abcdefgh.{HOST_TAG}-{os.getpid()}.nlv-partial": b"a live owner (us)",
        "img.nii.bak": b"user file",
    }
    for name, data in keep.items():
        (work / name).write_bytes(data)

    stats = {"save": {}, "as_file": {}, "kills": 0, "partials_seen": 0, "temp_folders_seen": 0}
    # the faster of two runs (the first may be slower, cold): kills then land inside the save
    t_save = min(timed_run(target, "save", str(temp)) for _ in range(2))
    t_copy = min(timed_run(target, "as_file", str(temp)) for _ in range(2)) if n_as_file else 0
    stats["save_seconds"] = round(t_save, 3)
    stats["as_file_seconds"] = round(t_copy, 3)
    rng = random.Random(1234)
    pids = []
    plan = [("save", k, n_save) for k in range(n_save)]
    plan += [("as_file", k, n_as_file) for k in range(n_as_file)]
    rng.shuffle(plan)
    for mode, k, n in plan:
        before = digest(target)
        full = t_save if mode == "save" else t_copy
        # stratified: even k over the whole save, odd k from 70% to 170% of it (its end:
        # the fsync and the rename, and just after)
        u = (k // 2 + rng.random()) / max(1, (n + 1) // 2)
        delay = full * (1.1 * u if k % 2 == 0 else 0.7 + u)
        pid, finished = kill_during(target, mode, str(temp), delay)
        pids.append(pid)
        stats["kills"] += 1
        now = digest(target)
        if mode == "save":
            assert now in old_new, f"torn file after a kill at {delay:.3f} s"
            outcome = "old" if now == before else "new"
        else:
            assert now == before, "as_file changed the source"
            outcome = check_handoff_leftovers(str(temp), pid, versions["C"][1])
        key = outcome + (" (finished)" if finished else "")
        stats[mode][key] = stats[mode].get(key, 0) + 1
        for name in os.listdir(work):  # only the target, bystanders, recognisable partials
            if name == os.path.basename(target) or name in keep:
                continue
            owner = leftovers.owner_of(name)
            assert owner is not None and owner[0] == HOST_TAG and owner[1] in pids, name
            stats["partials_seen"] += 1
    # the next save removes every partial of the killed children (once a few seconds old)
    time.sleep(MIN_AGE_S + 0.5)
    img = nlv.load(target)
    img.header["descrip"] = b"final"
    nlv.save(img, target)
    left = sorted(os.listdir(work))
    assert left == sorted([os.path.basename(target), *keep]), left
    for name, data in keep.items():
        assert (work / name).read_bytes() == data
    # the next run's as_file removes the killed children's folders
    folders = [f for f in os.listdir(temp) if f.startswith("nilazyview-")]
    stats["temp_folders_seen"] = len(folders)
    timed_run(target, "as_file", str(temp))
    assert os.listdir(temp) == []
    return stats


def check_handoff_leftovers(temp: str, pid: int, want: str) -> str:
    """A killed as_file leaves its folder: stubs, partials, or a complete copy -- never torn."""
    mine = [f for f in os.listdir(temp) if leftovers.owner_of(f) == (HOST_TAG, pid)]
    assert len(mine) <= 1
    if not mine:
        return "no folder yet"
    folder = os.path.join(temp, mine[0])
    assert os.stat(folder).st_mode & 0o777 == 0o700
    outcome = "partial"
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        assert os.stat(path).st_mode & 0o777 == 0o600, name
        if name.endswith(".stub") or _partial_of(name, pid):
            continue
        assert name.endswith(".nii") or name.endswith(".nii.gz"), name
        assert digest(path) == want, f"torn hand-off copy {name}"
        outcome = "complete copy"
    return outcome


def _save_report(name: str, stats: dict) -> None:
    os.makedirs(ARTIFACTS, exist_ok=True)
    with open(os.path.join(ARTIFACTS, name), "w") as f:
        json.dump(stats, f, indent=1)
    print(json.dumps(stats))


def test_kill_during_save_and_as_file(tmp_path):
    """12 kills on a 40 MB file: always the old or the new file; leftovers cleaned."""
    stats = run_kills(tmp_path, n_save=8, n_as_file=4, shape=(256, 256, 160))
    assert stats["kills"] == 12
    _save_report("crash_safety_default.json", stats)


@SLOW
@pytest.mark.slow
def test_kill_during_save_big(tmp_path):
    """40 save kills and 16 as_file kills on a 320 MB file."""
    stats = run_kills(tmp_path, n_save=40, n_as_file=16, shape=(512, 512, 320))
    _save_report("crash_safety_big.json", stats)


@SLOW
@pytest.mark.slow
def test_kill_during_gzip_save(tmp_path):
    """8 kills in the middle of a .nii.gz save over its source."""
    stats = run_kills(tmp_path, n_save=8, n_as_file=0, shape=(256, 256, 160), gz=True)
    _save_report("crash_safety_gz.json", stats)


# --- the cleanup rules, one by one -------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _age(path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t), follow_symlinks=False)


def _live_sleeper() -> subprocess.Popen:
    """A live process, started before the leftovers it 'owns' are last modified."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    time.sleep(0.3)
    return proc


# files 'last written' 1 s ago by their owner: past MIN_AGE_S (lowered to 0.5 s), and after
# the live sleeper started -- aging them further would make it look like a reused pid
RECENT = 1.0


def test_partial_cleanup_rules(tmp_path, monkeypatch):
    monkeypatch.setattr(leftovers, "MIN_AGE_S", 0.5)
    dead = _dead_pid()
    sleeper = _live_sleeper()
    try:
        files = {
            f".a.nii.abcdefgh.{HOST_TAG}-{dead}.nlv-partial": True,  # dead owner, old: removed
            f".b.nii.abcdefgh.{HOST_TAG}-{sleeper.pid}.nlv-partial": False,  # live owner
            f".c.nii.abcdefgh.{HOST_TAG}-{os.getpid()}.nlv-partial": False,  # ourselves
            f".d.nii.abcdefgh.000000-{dead}.nlv-partial": HOST_TAG == "000000",  # other host
            ".e.nii.abcdefgh.nlv-partial": False,  # no owner record, 1 hour old
            ".f.nii.abcdefgh.nlv-partial.bak": False,  # not our name
            "g.nii.abcdefgh.nlv-partial": False,  # no leading dot
            f".h.nii.{HOST_TAG}-{dead}.nlv-partial-x": False,
        }
        for name in files:
            (tmp_path / name).write_bytes(b"x")
            _age(tmp_path / name, RECENT)
        _age(tmp_path / ".e.nii.abcdefgh.nlv-partial", 3600)
        young = tmp_path / f".y.nii.abcdefgh.{HOST_TAG}-{dead}.nlv-partial"
        young.write_bytes(b"x")  # dead owner but fresh: kept (MIN_AGE_S)
        ancient = tmp_path / ".z.nii.abcdefgh.nlv-partial"
        ancient.write_bytes(b"x")
        _age(ancient, leftovers.ABANDONED_AFTER_S + 60)  # no owner, untouched a day: removed
        # a symlink and a folder with partial names: never followed or removed
        victim = tmp_path / "victim.nii"
        victim.write_bytes(b"precious")
        link = tmp_path / f".l.nii.abcdefgh.{HOST_TAG}-{dead}.nlv-partial"
        link.symlink_to(victim)
        _age(link, RECENT)
        folder = tmp_path / f".d.nii.abcdefgh.{HOST_TAG}-{dead}.nlv-partial.d"
        folder.mkdir()
        nlv.save(nlv.Image(np.zeros((2, 2, 2), np.uint8)), str(tmp_path / "new.nii"))
        for name, removed in files.items():
            assert (tmp_path / name).exists() != removed, name
        assert young.exists() and not ancient.exists()
        assert link.is_symlink() and victim.read_bytes() == b"precious"
        assert folder.is_dir()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_zombie_and_reused_pids_count_as_gone():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    time.sleep(0.5)  # exited, not yet reaped: a zombie
    try:
        assert leftovers.process_gone(proc.pid, time.time())
    finally:
        proc.wait()
    # a live process that started after the file was last written reused the pid
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.2)
        assert leftovers.process_gone(sleeper.pid, time.time() - 3600)
        assert not leftovers.process_gone(sleeper.pid, time.time())
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not leftovers.process_gone(os.getpid(), 0.0)
    assert not leftovers.process_gone(1, time.time())  # alive (another user's): kept


def test_handoff_folder_cleanup_rules(tmp_path, monkeypatch):
    monkeypatch.setattr(leftovers, "MIN_AGE_S", 0.5)
    dead = _dead_pid()
    sleeper = _live_sleeper()
    try:
        folders = {
            f"nilazyview-{HOST_TAG}-{dead}-abc123": True,
            f"nilazyview-{HOST_TAG}-{sleeper.pid}-abc123": False,
            f"nilazyview-000000-{dead}-abc123": HOST_TAG == "000000",
            "nilazyview-abc123": False,  # older naming, no owner: a live kernel may use it
            "nilazyview-view-abc123": False,  # the CLI's notebook folder
            f"other-{HOST_TAG}-{dead}-abc123": False,
        }
        for name in folders:
            (tmp_path / name).mkdir()
            (tmp_path / name / "img.nii").write_bytes(b"x")
            _age(tmp_path / name, RECENT)
        victim = tmp_path / "victim"
        victim.mkdir()
        (victim / "keep.txt").write_bytes(b"precious")
        link = tmp_path / f"nilazyview-{HOST_TAG}-{dead}-link"
        link.symlink_to(victim)
        fresh = tmp_path / f"nilazyview-{HOST_TAG}-{dead}-fresh"
        fresh.mkdir()  # dead owner, but modified just now: kept until MIN_AGE_S
        _age(tmp_path / "nilazyview-abc123", 30 * 24 * 3600)  # even a month old
        monkeypatch.setenv("NILAZYVIEW_TMPDIR", str(tmp_path))
        monkeypatch.setattr(handoff, "_folder", None)
        img = nlv.Image(np.zeros((2, 2, 2), np.uint8))
        out = nlv.as_file(img)
        assert os.path.basename(os.path.dirname(out)).startswith(leftovers.handoff_prefix())
        for name, removed in folders.items():
            assert (tmp_path / name).exists() != removed, name
        assert link.is_symlink() and (victim / "keep.txt").read_bytes() == b"precious"
        assert fresh.is_dir()
        nlv.release(img)
    finally:
        sleeper.kill()
        sleeper.wait()
