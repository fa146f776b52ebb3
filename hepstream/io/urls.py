"""The one table of location schemes: which inputs and outputs are XRootD URLs.

Everything that asks "is this remote?" (the source, uploads, the VM agent, image repositories,
the cloud driver's loopback rewrite, conditions payload stores) asks :func:`is_remote`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from hepstream.errors import InputError

#: XRootD URL schemes, plain and TLS (``roots``/``xroots`` ask the client for TLS).
XROOTD_SCHEMES = frozenset({"root", "roots", "xroot", "xroots"})


def is_remote(location: str) -> bool:
    """True for an XRootD URL (``root://``, ``xroot://`` and their TLS forms)."""
    return isinstance(location, str) and location.split("://", 1)[0] in XROOTD_SCHEMES


def split_url(url: str) -> tuple[str, str]:
    """``root://host:port//path`` -> (``root://host:port``, ``/path``)."""
    parts = urlsplit(url)
    if parts.scheme not in XROOTD_SCHEMES:
        raise InputError(f"not an XRootD URL: {url}; expected root://host:port//path")
    return f"{parts.scheme}://{parts.netloc}", "/" + parts.path.lstrip("/")


def via_cache(location: str, cache: str | None) -> str:
    """``location`` read through the site cache ``cache`` (``root://host:port``): the same
    path on the cache's server. Local paths, and every location when ``cache`` is None, are
    returned as they are."""
    if not cache or not is_remote(location):
        return location
    server, _ = split_url(cache.rstrip("/") + "//")
    _, path = split_url(location)
    return f"{server}/{path}"
