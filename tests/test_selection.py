"""The plugin-side helpers: numpy views of awkward branches for numba kernels."""

from __future__ import annotations

import itertools

import awkward as ak
import numpy as np
import pytest

import hepstream


@pytest.fixture
def events() -> ak.Array:
    return ak.zip(
        {
            "ntrk": np.array([2, 0, 3, 1], np.int32),
            "p": ak.Array([[1.0, 2.0], [], [3.0, 4.0, 5.0], [6.0]]),
        },
        depth_limit=1,
    )


def _events_of(offsets: np.ndarray, content: np.ndarray) -> list[list[float]]:
    return [content[a:b].tolist() for a, b in itertools.pairwise(offsets)]


def test_flat_by_field_is_a_view_of_the_branch(events) -> None:
    by_field = hepstream.flat(events, "ntrk")
    assert by_field.tolist() == [2, 0, 3, 1]
    assert by_field.dtype == np.int32
    assert np.shares_memory(by_field, hepstream.flat(events.ntrk))


def test_jagged_by_field_matches_attribute_form(events) -> None:
    offsets, content = hepstream.jagged(events, "p")
    assert _events_of(offsets, content) == [[1.0, 2.0], [], [3.0, 4.0, 5.0], [6.0]]
    same_offsets, same_content = hepstream.jagged(events.p)
    assert np.array_equal(offsets, same_offsets)
    assert np.array_equal(content, same_content)


def test_sliced_records_keep_their_own_length(events) -> None:
    tail = events[2:]
    assert hepstream.flat(tail, "ntrk").tolist() == [3, 1]
    offsets, content = hepstream.jagged(tail, "p")
    assert len(offsets) == 3
    assert _events_of(offsets, content) == [[3.0, 4.0, 5.0], [6.0]]


def test_masked_records_are_packed_once(events) -> None:
    picked = events[np.array([True, False, False, True])]
    assert hepstream.flat(picked, "ntrk").tolist() == [2, 1]
    offsets, content = hepstream.jagged(picked, "p")
    assert offsets.tolist() == [0, 2, 3]
    assert content.tolist() == [1.0, 2.0, 6.0]


def test_unknown_field_names_the_field(events) -> None:
    with pytest.raises(Exception, match="nope"):
        hepstream.flat(events, "nope")


def test_check_mask_rejects_wrong_dtype_and_length() -> None:
    from hepstream.errors import PluginError
    from hepstream.plugin.calls import check_mask

    assert check_mask(np.array([True, False]), 2, "here").tolist() == [True, False]
    with pytest.raises(PluginError, match="int64"):
        check_mask(np.array([1, 0]), 2, "here")
    with pytest.raises(PluginError, match=r"shape \(3,\)"):
        check_mask(np.ones(3, bool), 2, "here")


NUMBA_PLUGIN = """
import numba
import numpy as np

import hepstream


@numba.njit(cache=True)
def _positive(x):
    return x > 0


class Positive(hepstream.Selection):
    branches = ["x"]

    def select(self, events):
        return _positive(hepstream.flat(events, "x"))
"""

IMPORT_IT = """
import sys, numpy as np
sys.path.insert(0, sys.argv[1])
import positive
print(int(positive._positive(np.array([1.0, -1.0, 2.0])).sum()))
"""

LOAD_IT = """
import sys, awkward as ak
from hepstream.plugin.loader import load_plugin
events = ak.zip({"x": [1.0, -1.0, 2.0]})
print(int(load_plugin(sys.argv[1]).select(events).sum()))
"""


def test_plugin_imported_by_its_own_name_elsewhere_still_loads(tmp_path) -> None:
    """numba's cache names the module a kernel was compiled in: the analyst's own
    ``import positive`` and hepstream's load must not share one cache."""
    import os
    import subprocess
    import sys

    plugin = tmp_path / "positive.py"
    plugin.write_text(NUMBA_PLUGIN)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    runs = [
        [sys.executable, "-c", IMPORT_IT, str(tmp_path)],
        [sys.executable, "-c", LOAD_IT, str(plugin)],
        [sys.executable, "-c", IMPORT_IT, str(tmp_path)],  # and back: each reads its own cache
        [sys.executable, "-c", LOAD_IT, str(plugin)],
    ]
    for cmd in runs:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "2"
    assert list((tmp_path / "__pycache__").glob("positive._positive-*.nbi"))
    assert list((tmp_path / "cache" / "hepstream" / "plugins").rglob("positive._positive-*.nbi"))


def test_take_equals_awkwards_mask_and_gives_packed_arrays_of_their_own():
    """The runner's ``take(events, mask)`` is ``events[mask]``: on numbers and lists of
    numbers (gathered), on views of a chunk, and on layouts it leaves to awkward."""
    import awkward as ak

    from hepstream.job.writer import _owns_packed
    from hepstream.plugin.take import take

    rng = np.random.default_rng(4)
    n = 5_000
    counts = rng.poisson(2.0, n)
    events = ak.zip({
        "x": rng.random(n).astype("f4"), "k": rng.integers(0, 9, n),
        "v": ak.unflatten(rng.random(int(counts.sum())), counts),
        "b": rng.random(n) < 0.5, "h": rng.random(n).astype("f2"),  # numba has no float16
        "c": ak.unflatten(rng.integers(-5, 5, int(counts.sum())).astype("i1"), counts),
    }, depth_limit=1)  # fmt: skip
    for fraction in (0.0, 0.07, 1.0):
        mask = rng.random(n) < fraction
        got = take(events, mask)
        assert got.type == events[mask].type
        assert ak.array_equal(got, events[mask])
        assert all(_owns_packed(got.layout.content(f)) for f in got.fields)
    view = events[1_000:2_000]  # a chunk's slice: offsets not starting at 0
    mask = rng.random(1_000) < 0.5
    assert ak.array_equal(take(view, mask), view[mask])
    odd = ak.zip({"s": ["a", "bb", "c"], "o": [1, None, 3]}, depth_limit=1)  # awkward's way
    mask = np.array([True, False, True])
    assert ak.array_equal(take(odd, mask), odd[mask])
    assert not _owns_packed(events.layout.content("v")[10:20])  # a view is copied by the writer


def test_the_writer_joins_pieces_as_awkward_does():
    """The writer's pieces of one column, joined: lists of numbers by numpy (views whose
    offsets start past 0, empty pieces), everything else by awkward; same type and values."""
    import awkward as ak

    from hepstream.job.writer import _concatenate

    rng = np.random.default_rng(5)
    counts = rng.poisson(2.0, 300)
    lists = ak.unflatten(rng.random(int(counts.sum())).astype("f4"), counts)
    cases = [
        [lists[:100], lists[150:160], lists[0:0], lists[200:]],  # views, an empty piece
        [lists[5:6]],
        [ak.Array([[1, 2]]), ak.Array([[3.5]])],  # int and float lists: awkward's way
        [ak.Array([["a"], ["b", "c"]]), ak.Array([["d"]])],  # strings: awkward's way
        [rng.random(4), rng.random(3)],
    ]
    for parts in cases:
        got, want = _concatenate(parts), ak.concatenate(parts)
        assert ak.Array(got).type == want.type
        assert ak.array_equal(ak.Array(got), want)
