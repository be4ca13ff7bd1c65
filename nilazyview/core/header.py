"""The image header: a mutable mapping over the format's binary fields."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Extension:
    """A NIfTI header extension: integer code and raw content."""

    code: int
    content: bytes

    def digest(self) -> bytes:
        """A 16-byte digest of code and content."""
        head = self.code.to_bytes(4, "little", signed=True)
        return hashlib.blake2b(head + self.content, digest_size=16).digest()


def _plain(value):
    """A header value as plain Python, for display: ``348``, ``b'n+1'``, lists for arrays."""
    if isinstance(value, np.ndarray) and value.ndim:
        return [_plain(v) for v in value]
    if isinstance(value, np.floating):
        return float(str(value))  # shortest text of the stored precision: 0.1, not 0.1000000015
    return value.item() if isinstance(value, np.generic | np.ndarray) else value


class Header(MutableMapping):
    """Fields of an Analyze, NIfTI-1 or NIfTI-2 header, by name.

    ``header["pixdim"]`` is a view: in-place edits change the header.
    Values keep the file's byte order; ``bytes(header)`` is the binary header.
    """

    def __init__(self, record: np.ndarray, kind: str, extensions: list[Extension] | None = None):
        self._rec = np.array(record, copy=True).reshape(())
        self.kind = kind
        self.extensions: list[Extension] = list(extensions or [])

    @property
    def endian(self) -> str:
        """Byte order of the fields: ``"<"`` (little) or ``">"`` (big)."""
        bo = self._rec.dtype["sizeof_hdr"].byteorder
        if bo == "=":
            return "<" if np.little_endian else ">"
        return bo if bo in "<>" else "<"

    def __getitem__(self, key: str):
        if key not in self._rec.dtype.names:
            raise KeyError(f"{self.kind} header has no field {key!r}")
        val = self._rec[key]
        return val if val.ndim else val[()]

    def __setitem__(self, key: str, value) -> None:
        if key not in self._rec.dtype.names:
            raise KeyError(f"{self.kind} header has no field {key!r}")
        self._rec[key] = value

    def __delitem__(self, key: str) -> None:
        raise TypeError("header fields cannot be deleted")

    def __iter__(self) -> Iterator[str]:
        return iter(self._rec.dtype.names)

    def __len__(self) -> int:
        return len(self._rec.dtype.names)

    def __bytes__(self) -> bytes:
        return self._rec.tobytes()

    def __repr__(self) -> str:
        lines = [f"<{self.kind} header, {self.endian} endian, {len(self.extensions)} extension(s)>"]
        lines += [f"  {k:<15} {_plain(self[k])!r}" for k in self]
        return "\n".join(lines)

    def copy(self) -> Header:
        """An independent copy of the fields; the extensions list is new, its items shared."""
        return type(self)(self._rec, self.kind, self.extensions)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Header):
            return NotImplemented
        return self.kind == other.kind and bytes(self) == bytes(other)

    @property
    def record(self) -> np.ndarray:
        """The 0-d structured array holding the fields (shared, not a copy)."""
        return self._rec
