"""The one table of output compression codecs: names, default levels, and what uproot and
Parquet call them.

A codec is written ``NAME`` or ``NAME:LEVEL`` (``zstd:1``, ``zlib``, ``lz4:4``, ``none``),
on the command line (``hepstream run --set compression=zlib:1``), in job mappings and in
``hepstream data generate``.
"""

from __future__ import annotations

from typing import Any

from hepstream.errors import ConfigError

#: Codec -> default level when none is given: uproot's default ZLIB(1), ROOT's presets 404
#: (LZ4) and 505 (ZSTD).
DEFAULT_LEVEL = {"zlib": 1, "lz4": 4, "zstd": 5, "none": 0}
CODECS = tuple(DEFAULT_LEVEL)
#: A job's output default: zstd level 1 compresses these outputs within ~10 % of zlib
#: level 1 and about 2.5x faster (readable by ROOT >= 6.20 and uproot with zstandard).
OUTPUT_DEFAULT = "zstd:1"
#: Parquet's names of the codecs.
_PARQUET = {"zlib": "gzip", "lz4": "lz4", "zstd": "zstd", "none": "none"}


def parse_codec(text: str, *, where: str = "compression") -> tuple[str, int]:
    """``NAME[:LEVEL]`` as (name, level); an unknown name or bad level is a ConfigError."""
    name, _, level_text = str(text).strip().lower().partition(":")
    if name not in DEFAULT_LEVEL:
        raise ConfigError(f"unknown {where} {text!r}: use one of {', '.join(CODECS)}, e.g. zstd:1")
    if not level_text:
        return name, DEFAULT_LEVEL[name]
    try:
        level = int(level_text)
    except ValueError:
        raise ConfigError(f"{where} {text!r}: the level after ':' must be a number") from None
    top = 0 if name == "none" else 9 if name == "zlib" else 12 if name == "lz4" else 22
    if not 0 <= level <= top:
        raise ConfigError(f"{where} {text!r}: {name} levels are 0 to {top}")
    return name, level


def uproot_codec(text: str) -> Any:
    """The uproot compression object (``uproot.ZSTD(1)``, ...; None for ``none``)."""
    import uproot

    name, level = parse_codec(text)
    if name == "none":
        return None
    return {"zlib": uproot.ZLIB, "lz4": uproot.LZ4, "zstd": uproot.ZSTD}[name](level)


def parquet_codec(text: str) -> tuple[str, int | None]:
    """(pyarrow compression name, level or None) for a Parquet writer."""
    name, level = parse_codec(text)
    if name == "none":
        return "none", None
    if name == "lz4":  # pyarrow's LZ4 takes no level
        return "lz4", None
    return _PARQUET[name], level
