"""The pure core: IOV lookup and chunk splitting on edge cases, the model's JSON and diff."""

from __future__ import annotations

import numpy as np
import pytest

from hepstream.conditions.model import (
    IOV,
    LOCKED,
    GlobalTag,
    Payload,
    Tag,
    diff,
    iov_hash,
    parse_since,
)
from hepstream.conditions.resolve import Piece, lookup, split, tags_for
from hepstream.errors import ConfigError, InputError

A, B, C, D = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)


def _tag(*sinces: tuple[int, int], payloads=(A, B, C, D), record="calib") -> Tag:
    return Tag(
        f"{record}-t", record, tuple(IOV(s, p) for s, p in zip(sinces, payloads, strict=False))
    )


def test_run_on_a_boundary_belongs_to_the_iov_starting_there() -> None:
    tag = _tag((100, 0), (200, 0))
    assert lookup(tag, 199, 2**32 - 1).payload == A
    assert lookup(tag, 200, 0).payload == B
    assert lookup(tag, 100, 0).payload == A


def test_last_iov_is_open_ended() -> None:
    tag = _tag((100, 0), (200, 0))
    assert lookup(tag, 2**31 - 1, 2**32 - 1).payload == B


def test_subrun_ordering_is_lexicographic_not_per_component() -> None:
    # a per-component comparison (major >= 5 and minor >= 3) would put (6, 1) before (5, 3)
    tag = _tag((4, 0), (5, 3), (6, 0))
    assert lookup(tag, 5, 2).payload == A
    assert lookup(tag, 5, 3).payload == B
    assert lookup(tag, 5, 99).payload == B
    assert lookup(tag, 6, 1).payload == C
    assert lookup(tag, 4, 100).payload == A


def test_before_the_first_iov_names_run_and_record() -> None:
    with pytest.raises(InputError, match=r"record 'calib'.*run 99 sub-run 7.*starts at 100:0"):
        lookup(_tag((100, 0)), 99, 7)
    with pytest.raises(InputError, match="run 5 sub-run 0"):
        split({"calib": _tag((10, 0))}, np.array([12, 11, 5, 10]))


def test_split_at_iov_boundaries_with_two_records() -> None:
    calib = _tag((1, 0), (3, 0))
    align = _tag((1, 0), (2, 5), payloads=(C, D), record="align")
    runs = np.array([1, 1, 2, 2, 2, 3, 3])
    subs = np.array([0, 9, 0, 5, 6, 0, 1])
    pieces = split({"calib": calib, "align": align}, runs, subs)
    assert [(p.start, p.stop) for p in pieces] == [(0, 3), (3, 5), (5, 7)]
    assert [(p.iovs["calib"].payload, p.iovs["align"].payload) for p in pieces] == [
        (A, C),
        (A, D),
        (B, D),
    ]


def test_unsorted_runs_give_contiguous_correct_pieces() -> None:
    tag = _tag((1, 0), (2, 0))
    runs = np.array([2, 2, 1, 2, 1, 1])
    pieces = split({"calib": tag}, runs)
    flat = [p.iovs["calib"].payload for p in pieces for _ in range(p.start, p.stop)]
    assert flat == [B, B, A, B, A, A]
    assert pieces[0] == Piece(0, 2, {"calib": tag.iovs[1]})


def test_empty_chunk_and_no_subrun_branch() -> None:
    tag = _tag((1, 0), (1, 1))
    assert split({"calib": tag}, np.array([], dtype=np.int32)) == []
    assert split({"calib": tag}, np.array([1, 1]))[0].iovs["calib"].payload == A


def test_out_of_range_runs_and_bad_since() -> None:
    with pytest.raises(InputError, match="run numbers"):
        split({"calib": _tag((0, 0))}, np.array([-1]))
    with pytest.raises(ConfigError, match="RUN:SUBRUN"):
        parse_since("12a")
    assert parse_since("7") == (7, 0)
    assert parse_since("7:3") == (7, 3)
    with pytest.raises(ConfigError, match="sorted"):
        Tag("t", "r", (IOV((2, 0), A), IOV((1, 0), B)))


def test_global_tag_json_round_trip_diff_and_hash() -> None:
    p = {s: Payload(s, "npz", 10) for s in (A, B, C)}
    old = GlobalTag("v1", LOCKED, {"calib": _tag((1, 0), (5, 0))}, {A: p[A], B: p[B]})
    new = GlobalTag("v2", LOCKED, {"calib": _tag((1, 0), (5, 0), (9, 0), payloads=(A, C, C))}, p)
    assert GlobalTag.from_dict(old.to_dict()) == old
    assert diff(old, new) == [("~", "calib", "5:0", f"{B} -> {C}"), ("+", "calib", "9:0", C)]
    assert diff(old, old) == []
    used = [("calib", (1, 0), A), ("calib", (5, 0), B)]
    assert iov_hash(used) == iov_hash(used[::-1]) != iov_hash(used[:1])
    with pytest.raises(ConfigError, match="no tag for record"):
        tags_for(old, ["align"])
