"""Where the bytes are: a local path (a plain ``str``) or a :class:`URL` with storage options.

A :class:`URL` is a ``str`` (so it flows through the loaders unchanged) whose
text is the URL without credentials or query string: that is what error messages,
logs and ``repr`` show. The full URL and the fsspec ``storage_options`` ride on
attributes. It pickles without anything that looks like a credential: workers
take credentials from their own environment.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*)://")
#: storage_options keys never pickled (matched as substrings, case-insensitive).
SECRET_WORDS = ("key", "secret", "token", "password", "passwd", "credential", "auth", "header")


def scheme_of(path: str) -> str | None:
    """The URL scheme of ``path`` (``"https"``, ``"s3"``), or None for a local path."""
    m = _SCHEME.match(path) if isinstance(path, str) else None
    if m is None:
        return None
    scheme = m.group(1).lower()
    return None if scheme == "file" else scheme


def is_url(path) -> bool:
    """True when ``path`` names a remote file (``scheme://...``, not ``file://``)."""
    return isinstance(path, URL) or scheme_of(path) is not None


def public_options(options: dict) -> dict:
    """``options`` without any entry whose key looks like a credential (also nested)."""
    out = {}
    for k, v in options.items():
        if any(w in str(k).lower() for w in SECRET_WORDS):
            continue
        out[k] = public_options(v) if isinstance(v, dict) else v
    return out


class URL(str):
    """A remote file: ``str(url)`` is the shown URL (no credentials, no query).

    Parameters
    ----------
    url : str
        Any fsspec URL (``https://``, ``s3://``, ``gs://``, ...). Credentials in
        the URL itself (``https://user:pw@host``) are refused: give them in
        ``storage_options`` or the environment.
    storage_options : dict, optional
        Passed to fsspec (``anon``, ``client_kwargs``, ``headers``, ...).
    """

    url: str
    storage_options: dict

    def __new__(cls, url: str, storage_options: dict | None = None) -> URL:
        if isinstance(url, URL):
            storage_options = url.storage_options if storage_options is None else storage_options
            url = url.url
        parts = urlsplit(str(url))
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                f"{parts.scheme}://{parts.hostname}{parts.path}: credentials in the URL are not "
                "accepted (they would show in errors and pickles); pass them in "
                "storage_options or the environment"
            )
        shown = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        obj = super().__new__(cls, shown)
        obj.url = str(url)
        obj.storage_options = dict(storage_options or {})
        return obj

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme.lower()

    def __reduce__(self):
        return (URL, (self.url, public_options(self.storage_options)))

    def __repr__(self) -> str:
        return f"URL({str(self)!r})"


__all__ = ["URL", "is_url", "public_options", "scheme_of"]
