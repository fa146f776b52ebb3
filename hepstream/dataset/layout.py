"""The I/O edge of splitting: each input's entry count and cluster boundaries."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import uproot

from hepstream.dataset.split import FileLayout
from hepstream.errors import HepstreamError, InputError
from hepstream.io import StreamConfig, StreamingSource, expand_inputs


def absolute(item: str) -> str:
    """``item`` as a job sees it from any directory: a local path (or ``@list.txt``) made
    absolute against this one; a URL (``root://``, ``http://``, ``file://``) as typed.

    A dataset's jobs run wherever its engine starts them (another shell, a batch node), so
    a path typed relative to the directory ``split`` ran in must not stay relative."""
    if item.startswith("@"):
        return "@" + absolute(item[1:])
    if "://" in item:
        return item
    return os.path.abspath(item)


def resolve_inputs(inputs: Sequence[str]) -> list[str]:
    """Paths, globs (``root://`` globs by directory listing) and ``@list.txt`` file lists;
    local ones absolute (:func:`absolute`; a list's lines, like the list, against the
    working directory)."""
    patterns: list[str] = []
    for item in inputs:
        if item.startswith("@"):
            try:
                lines = Path(item[1:]).read_text().splitlines()
            except OSError as err:
                raise InputError(f"cannot read file list {item[1:]}: {err.strerror}") from None
            patterns += [
                absolute(ln.strip()) for ln in lines if ln.strip() and not ln.startswith("#")
            ]
        else:
            patterns.append(absolute(item))
    if not patterns:
        raise InputError("no inputs given; pass paths, root:// globs or @filelist.txt")
    return expand_inputs(patterns)


def read_layouts(paths: Sequence[str], tree: str) -> list[FileLayout]:
    """Open each file's metadata (header, keys, TTree) once; no basket is read."""
    out = []
    for path in paths:
        try:
            with uproot.open(
                path, handler=StreamingSource, hepstream_config=StreamConfig(), array_cache=None
            ) as file:
                try:
                    ttree = file[tree]
                except (KeyError, uproot.KeyInFileError):
                    raise InputError(
                        f"{path} has no TTree {tree!r}; fix the plugin's tree"
                    ) from None
                offsets = tuple(int(o) for o in ttree.common_entry_offsets())
                out.append(FileLayout(path, int(ttree.num_entries), offsets))
        except HepstreamError:
            raise
        except (OSError, ValueError) as err:
            raise InputError(f"cannot read {path}: {str(err).splitlines()[0]}") from None
    return out
