"""Helpers shared by the decoder tests (``test_baskets.py``, ``test_pages.py``): the
number types, uproot's codecs, one batch of every number type, and the check that
hepstream's arrays are uproot's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import awkward as ak
import numpy as np
import uproot

from hepstream.root.store import event_store

NUMBERS = ("f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8")
#: uproot's writers, by the name the tests give each codec.
UPROOT_CODECS: dict[str, Any] = {
    "zlib": uproot.ZLIB(4),
    "lz4": uproot.LZ4(1),
    "zstd": uproot.ZSTD(3),
    "lzma": uproot.LZMA(1),
    "none": None,
}


def number_batch(rng: np.random.Generator, n: int) -> dict[str, Any]:
    """``n`` entries: ``flag`` (bool), ``x_<type>`` per number type, and ``v_<type>`` a
    list of that type per entry (Poisson counts, empty lists included)."""
    counts = rng.poisson(2.5, n)
    batch: dict[str, Any] = {"flag": rng.random(n) < 0.3}
    for t in NUMBERS:
        batch[f"x_{t}"] = (rng.random(n) * 200 - 100).astype(t)
        items = (rng.random(int(counts.sum())) * 200 - 100).astype(t)
        batch[f"v_{t}"] = ak.unflatten(items, counts)
    return batch


def same(store: Any, obj: Any, names: list[str], start: int, stop: int) -> None:
    """hepstream's arrays of ``names`` over ``[start, stop)`` are uproot's: fields, types
    and values (``obj`` is uproot's TTree or RNTuple)."""
    got = store.arrays(names, start, stop)
    want = obj.arrays(names, entry_start=start, entry_stop=stop, library="ak")
    assert got.fields == list(names)
    for name in names:
        assert got[name].type == want[name].type, name
        assert ak.array_equal(got[name], want[name]), name


@contextmanager
def opened(path: str, name: str, **options: Any) -> Iterator[tuple[Any, list[str], Any]]:
    """uproot's ``name`` in ``path``, its top-level field names, and hepstream's store."""
    with uproot.open(path, **options) as file:
        obj = file[name]
        yield obj, list(obj.keys(recursive=False)), event_store(str(path), file, name)
