"""The read planner, pure: index + layout -> byte runs, no file touched.

Oracles: byte counts worked out by hand from the layout (shape, itemsize,
order), and numpy's ``ravel_multi_index`` for where each selected element lives.
"""

from __future__ import annotations

import numpy as np
import pytest

from nilazyview.core.layout import DiskLayout
from nilazyview.core.plan import GZIP_STREAM, PLAIN_FILE, ReadHeuristic, plan_read, run_offsets

EXACT = ReadHeuristic(run_cost_bytes=0, mmap_min_runs=None)  # runs cost nothing: read least
SHAPE = (40, 50, 60)
F = DiskLayout(SHAPE, np.dtype("<f4"), 352, "F")
C = DiskLayout(SHAPE, np.dtype("<f4"), 352, "C")


def _covered(plan, index) -> bool:
    """Every element numpy selects with ``index`` lies inside one of the plan's runs."""
    layout = plan.layout
    item = layout.dtype.itemsize
    grids = np.meshgrid(*[np.arange(n) for n in layout.shape], indexing="ij")
    picked = [np.asarray(g[index]).ravel() for g in grids]
    flat = np.ravel_multi_index(picked, layout.shape, order=layout.order)
    pos = layout.offset + flat * item
    offsets, length = run_offsets(layout, plan.box)
    i = np.searchsorted(offsets, pos, side="right") - 1
    return bool(np.all((i >= 0) & (pos + item <= offsets[np.maximum(i, 0)] + length)))


def test_last_axis_slice_of_f_order_is_one_run():
    plan = plan_read(F, (Ellipsis, 7), EXACT)
    assert plan.strategy == "pread"
    assert plan.n_runs == 1
    assert plan.runs.run_nbytes == 40 * 50 * 4
    assert plan.nbytes == 40 * 50 * 4


def test_middle_axis_slice_of_f_order_is_shape2_runs():
    plan = plan_read(F, (slice(None), 7, slice(None)), EXACT)
    assert plan.n_runs == SHAPE[2]
    assert plan.runs.run_nbytes == SHAPE[0] * 4
    assert plan.nbytes == SHAPE[0] * SHAPE[2] * 4


def test_first_axis_slice_of_c_order_is_one_run():
    plan = plan_read(C, (7,), EXACT)
    assert plan.n_runs == 1
    assert plan.nbytes == 50 * 60 * 4


def test_middle_axis_slice_of_c_order_is_shape0_runs():
    plan = plan_read(C, (slice(None), 7, slice(None)), EXACT)
    assert plan.n_runs == SHAPE[0]
    assert plan.runs.run_nbytes == SHAPE[2] * 4


def test_first_axis_of_f_order_and_last_of_c_order_are_elementwise_or_spanned():
    plan = plan_read(F, (7,), EXACT)
    assert plan.nbytes == 50 * 60 * 4 and plan.n_runs == 50 * 60
    plan = plan_read(C, (Ellipsis, 7), EXACT)
    assert plan.nbytes == 40 * 50 * 4 and plan.n_runs == 40 * 50


def test_adjacent_runs_coalesce():
    # F order: full axis 0, a block of axis 1 -> one run per axis-2 position
    plan = plan_read(F, (slice(None), slice(10, 20), slice(3, 5)), EXACT)
    assert plan.n_runs == 2
    assert plan.runs.run_nbytes == 40 * 10 * 4


def test_small_gaps_are_read_through():
    # every other column: gaps of 40*4 B, far smaller than a run's cost
    h = ReadHeuristic(run_cost_bytes=32 * 1024, mmap_min_runs=None)
    plan = plan_read(F, (slice(None), slice(None, None, 2), 5), h)
    assert plan.n_runs == 1
    assert plan.nbytes >= 40 * 25 * 4


def test_nearly_whole_file_reads_the_span_once():
    h = ReadHeuristic(mmap_min_runs=None)
    for layout in (F, C):
        plan = plan_read(layout, (slice(1, -1), slice(1, -1), slice(1, -1)), h)
        assert plan.strategy == "pread"
        assert plan.n_runs == 1
        assert plan.nbytes <= layout.nbytes


@pytest.mark.parametrize(
    "index",
    [(slice(5, 5),), (Ellipsis, slice(3, 1)), (slice(None), slice(None, None, -1), slice(0, 0))],
)
def test_empty_selection_plans_empty(index):
    plan = plan_read(F, index, PLAIN_FILE)
    assert plan.strategy == "empty"
    assert plan.nbytes == 0 and plan.n_runs == 0
    assert plan.out_shape == np.zeros(SHAPE)[index].shape


def test_mmap_only_when_the_heuristic_allows_it():
    big = DiskLayout((512, 512, 512), np.dtype("<f4"), 352, "F")
    index = (slice(None), 100, slice(None))  # 512 runs of 2 KiB, 1 MiB apart
    never = [
        plan_read(big, index, ReadHeuristic(mmap_min_runs=None)).strategy,
        plan_read(big, index, GZIP_STREAM).strategy,
        plan_read(big, (7, slice(None), 3), ReadHeuristic(mmap_min_runs=None)).strategy,
    ]
    assert "mmap" not in never
    forced = ReadHeuristic(run_cost_bytes=2**40, mmap_min_runs=0)
    assert plan_read(big, index, forced).strategy == "mmap"
    # a one-run read never needs a map
    assert plan_read(big, (Ellipsis, 3), PLAIN_FILE).strategy == "pread"


def test_gzip_heuristic_prefers_few_runs():
    plan = plan_read(F, (slice(None), 7, slice(None)), GZIP_STREAM)
    assert plan.n_runs == 1  # seeking in gzip costs more than decompressing through


@pytest.mark.parametrize("layout", [F, C], ids=["F", "C"])
@pytest.mark.parametrize(
    "index",
    [
        (Ellipsis, 7),
        (7,),
        (slice(None), 7),
        (slice(3, 30, 7), slice(None, None, -3), 59),
        (slice(None, None, -1), None, 0, slice(5, 6)),
        (-1, -1, -1),
    ],
)
@pytest.mark.parametrize(
    "heuristic",
    [EXACT, PLAIN_FILE, GZIP_STREAM, ReadHeuristic(run_cost_bytes=10**12, mmap_min_runs=None)],
    ids=["exact", "plain", "gzip", "huge-run-cost"],
)
def test_runs_cover_every_selected_element(layout, index, heuristic):
    plan = plan_read(layout, index, heuristic)
    assert plan.out_shape == np.zeros(SHAPE)[index].shape
    offsets, length = run_offsets(layout, plan.box)
    assert len(offsets) == plan.n_runs
    assert length * len(offsets) == plan.nbytes
    assert np.all(np.diff(offsets) >= length)  # sorted, non-overlapping
    assert offsets[0] >= layout.offset
    assert offsets[-1] + length <= layout.offset + layout.nbytes
    assert _covered(plan, index)


def test_plan_view_on_image_describes_without_reading(tmp_path):
    import nilazyview as nlv

    data = np.arange(40 * 50 * 6, dtype=np.int16).reshape(40, 50, 6)
    nlv.save(nlv.Image(data), tmp_path / "a.nii")
    img = nlv.load(tmp_path / "a.nii")
    plan = img.slicecopy.plan[..., 2]
    assert plan.n_runs == 1
    assert plan.nbytes == 40 * 50 * 2
    assert plan.strategy == "pread"
    assert isinstance(plan.describe(), str)
    assert img.is_proxy


# --- the planner's choice against a brute-force search -------------------------------


def _brute_force_cost(layout, index, run_cost):
    """Least cost over every candidate box, each built and counted the slow way.

    Candidates as documented: for m = 0..ndim, storage axes before m read whole,
    axis m read widened (lowest to highest selected position) or as selected, the
    rest as selected. Runs are counted by walking the box element by element.
    """
    shape, item = layout.shape, layout.dtype.itemsize
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    picked = [np.unique(np.asarray(g[index]).ravel()) for g in grids]  # per-axis positions
    order = list(range(layout.ndim)) if layout.order == "F" else list(range(layout.ndim))[::-1]
    best = None
    for m in range(layout.ndim + 1):
        for widen in (True, False):
            sets = [p for p in picked]
            for ax in order[:m]:
                sets[ax] = np.arange(shape[ax])
            if m < layout.ndim and widen:
                ax = order[m]
                sets[ax] = np.arange(picked[ax].min(), picked[ax].max() + 1)
            mesh = np.meshgrid(*sets, indexing="ij")
            flat = np.sort(
                np.ravel_multi_index([g.ravel() for g in mesh], shape, order=layout.order)
            )
            runs = 1 + int(np.count_nonzero(np.diff(flat) != 1))
            nbytes = flat.size * item
            cost = nbytes + runs * run_cost
            best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("layout", [F, C], ids=["F", "C"])
@pytest.mark.parametrize("run_cost", [0, 64, 4096, 10**9])
@pytest.mark.parametrize(
    "index",
    [
        (Ellipsis, 7),
        (slice(None), 7),
        (7,),
        (slice(2, 30, 3), slice(None), slice(5, 9)),
        (slice(None), slice(None, None, -2), 3),
        (slice(0, 40), slice(10, 11), slice(None, None, 7)),
        (3, 4, slice(None)),
        (slice(None), slice(None), slice(0, 60)),
    ],
)
def test_chosen_box_costs_no_more_than_any_candidate(layout, run_cost, index):
    small = DiskLayout((10, 12, 14), layout.dtype, layout.offset, layout.order)
    index = tuple(
        (min(it, 9) if isinstance(it, int) else it) if it is not Ellipsis else it for it in index
    )
    heur = ReadHeuristic(run_cost_bytes=run_cost, mmap_min_runs=None)
    plan = plan_read(small, index, heur)
    chosen = plan.nbytes + plan.n_runs * run_cost
    assert chosen == _brute_force_cost(small, index, run_cost)
