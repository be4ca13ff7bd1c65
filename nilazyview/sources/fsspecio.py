"""Other fsspec URLs (``s3://``, ``gs://``, ...): ranges through ``cat_ranges``, S3 with IfMatch.

The fsspec backends are optional (the ``remote`` extra, plus ``s3fs`` or
``gcsfs``); a missing one raises :class:`~nilazyview.errors.MissingExtraError` naming it.
"""

from __future__ import annotations

import asyncio

from ..errors import (
    MissingExtraError,
    RemoteAccessError,
    RemoteError,
    RemoteNotFoundError,
    require,
)
from .http import Answer
from .urls import URL


class FsspecTransport:
    """Ranges of one fsspec URL (``s3://``, ``gs://``, ...) through ``cat_ranges``."""

    def __init__(self, url: URL, concurrency: int):
        fsspec = require("fsspec", "remote", f"{url}: reading {url.scheme}:// URLs")
        from fsspec.registry import known_implementations, registry  # the same extra

        if url.scheme not in known_implementations and url.scheme not in registry:
            raise RemoteError(f"{url}: fsspec knows no filesystem for {url.scheme}://")
        self.shown, self.concurrency = str(url), concurrency
        try:
            self.fs, self.path = fsspec.core.url_to_fs(url.url, **url.storage_options)
        except ImportError as exc:
            raise MissingExtraError(
                f"{url}: {url.scheme}:// needs {exc.name or 'its fsspec backend'} "
                f'(pip install "nilazyview[remote]" and, for S3, s3fs; GCS: gcsfs): {exc}'
            ) from None

    def _mapped(self, exc: BaseException) -> BaseException:
        if isinstance(exc, FileNotFoundError):
            return RemoteNotFoundError(f"{self.shown}: no such file ({type(exc).__name__})")
        if isinstance(exc, PermissionError):
            return RemoteAccessError(f"{self.shown}: access denied; check the credentials")
        return RemoteError(f"{self.shown}: read failed: {type(exc).__name__}: {exc}")

    def stat(self) -> tuple[int, str]:
        try:
            info = self.fs.info(self.path, refresh=True)
        except TypeError:
            info = self.fs.info(self.path)
        except Exception as exc:
            raise self._mapped(exc) from None
        tag = info.get("ETag") or info.get("etag") or info.get("md5Hash")
        when = info.get("LastModified") or info.get("mtime") or info.get("updated") or ""
        return int(info["size"]), f"etag:{tag}" if tag else f"modified:{when}"

    def get_many(self, ranges: list[tuple[int, int]], size: int, validator: str) -> list[Answer]:
        if hasattr(self.fs, "_call_s3") and validator.startswith("etag:"):
            return self._s3_many(ranges, validator)
        try:
            blocks = self.fs.cat_ranges(
                [self.path] * len(ranges),
                [a for a, _ in ranges],
                [b for _, b in ranges],
                batch_size=self.concurrency,
                on_error="raise",
            )
        except TypeError:  # a synchronous filesystem: no batch_size
            blocks = self.fs.cat_ranges(
                [self.path] * len(ranges), [a for a, _ in ranges], [b for _, b in ranges]
            )
        except Exception as exc:
            raise self._mapped(exc) from None
        return [Answer(bytes(b), size, validator) for b in blocks]

    def _s3_many(self, ranges: list[tuple[int, int]], validator: str) -> list[Answer]:
        """S3 ranges with ``IfMatch``: a changed object answers 412, never new bytes."""
        from fsspec.asyn import sync  # the optional 'remote' extra

        bucket, key, _ = self.fs.split_path(self.path)
        etag = validator.removeprefix("etag:")
        limit = asyncio.Semaphore(self.concurrency)

        async def one(a: int, b: int) -> Answer:
            async with limit:
                try:
                    resp = await self.fs._call_s3(
                        "get_object",
                        Bucket=bucket,
                        Key=key,
                        Range=f"bytes={a}-{b - 1}",
                        IfMatch=etag,
                    )
                except Exception as exc:
                    text = str(exc)
                    if "412" in text or "condition" in text:  # PreconditionFailed
                        return Answer(b"", -1, "etag:(changed)")
                    raise
                body = resp["Body"]
                try:
                    data = await body.read()
                finally:
                    body.close()
                total = int(str(resp.get("ContentRange", "/-1")).rsplit("/", 1)[-1])
                return Answer(data, total, "etag:" + str(resp.get("ETag", "")))

        async def run() -> list[Answer]:
            return list(await asyncio.gather(*(one(a, b) for a, b in ranges)))

        try:
            return sync(self.fs.loop, run)
        except Exception as exc:
            raise self._mapped(exc) from None

    def close(self) -> None:
        pass


__all__ = ["FsspecTransport"]
