"""Authoring through the CLI on SQLite: create, add, show, diff, lock, snapshot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hepstream.cli import main
from hepstream.conditions.payload import sha256_file
from hepstream.conditions.sample import build_beam_db
from hepstream.conditions.store import Store


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_author_show_diff_lock(tmp_path: Path, capsys) -> None:
    db = str(tmp_path / "db")
    np.savez(tmp_path / "a.npz", gain=np.arange(4.0))
    (tmp_path / "b.json").write_text(json.dumps({"offset": 1.5}))
    assert _cli(capsys, "conditions", "create", "v1", "--db", db)[0] == 0
    code, out, _ = _cli(
        capsys,
        "conditions",
        "add",
        "v1",
        "calib",
        str(tmp_path / "a.npz"),
        "--since",
        "100",
        "--db",
        db,
        "--json",
    )
    assert code == 0
    assert json.loads(out)["sha256"] == sha256_file(tmp_path / "a.npz")[0]
    for since in ("200:3", "300"):
        argv = ["conditions", "add", "v1", "calib", str(tmp_path / "b.json"), "--since", since]
        assert _cli(capsys, *argv, "--db", db)[0] == 0
    code, out, _ = _cli(capsys, "conditions", "show", "v1", "--db", db, "--json")
    doc = json.loads(out)
    assert doc["status"] == "OPEN"
    assert [iov[:2] for iov in doc["tags"]["calib"]["iovs"]] == [[100, 0], [200, 3], [300, 0]]
    assert {p["kind"] for p in doc["payloads"].values()} == {"npz", "json"}
    code, out, _ = _cli(capsys, "conditions", "show", "v1", "--db", db)
    assert "[200:3, 300:0)" in out
    assert "open end" in out

    # a second tag differing in one IOV
    assert _cli(capsys, "conditions", "create", "v2", "--db", db)[0] == 0
    argv = ["conditions", "add", "v2", "calib", str(tmp_path / "a.npz"), "--since", "100"]
    assert _cli(capsys, *argv, "--db", db)[0] == 0
    code, out, _ = _cli(capsys, "conditions", "diff", "v1", "v2", "--db", db, "--json")
    rows = json.loads(out)
    assert [(r["change"], r["since"]) for r in rows] == [("-", "200:3"), ("-", "300:0")]

    # duplicates, locked tags and bad files are one-line errors with exit 2
    code, _, err = _cli(capsys, *argv, "--db", db)
    assert code == 2
    assert "already has an IOV at 100:0" in err
    assert _cli(capsys, "conditions", "lock", "v1", "--db", db)[0] == 0
    argv = ["conditions", "add", "v1", "calib", str(tmp_path / "a.npz"), "--since", "400"]
    code, _, err = _cli(capsys, *argv, "--db", db)
    assert code == 2
    assert "v1 is LOCKED" in err
    (tmp_path / "bad.npz").write_text("not a zip")
    argv = ["conditions", "add", "v2", "calib", str(tmp_path / "bad.npz"), "--since", "5"]
    code, _, err = _cli(capsys, *argv, "--db", db)
    assert code == 2
    assert "not a numpy .npz archive" in err
    code, out, _ = _cli(capsys, "conditions", "show", "--db", db, "--json")
    assert json.loads(out) == [{"name": "v1", "status": "LOCKED"}, {"name": "v2", "status": "OPEN"}]


def test_missing_db_and_unknown_tag(tmp_path: Path, capsys) -> None:
    code, _, err = _cli(capsys, "conditions", "show", "v1", "--db", str(tmp_path / "none"))
    assert code == 3
    assert "is not a conditions database" in err
    Store(tmp_path / "db", create=True).close()
    code, _, err = _cli(capsys, "conditions", "lock", "nope", "--db", str(tmp_path / "db"))
    assert code == 3
    assert "no global tag 'nope'" in err


def test_snapshot_is_a_complete_locked_copy(beam_db: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "snap"
    code, _, err = _cli(
        capsys, "conditions", "snapshot", "beam-v1", str(target), "--db", str(beam_db)
    )
    assert code == 0, err
    with Store(beam_db) as a, Store(target) as b:
        gt = a.global_tag("beam-v1")
        assert b.global_tag("beam-v1") == gt
        assert b.names() == [("beam-v1", "LOCKED")]
        for payload in gt.payloads.values():
            assert sha256_file(b.payload_file(payload))[0] == payload.sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db", "snap"]  # no temp dirs left
    code, _, err = _cli(
        capsys, "conditions", "snapshot", "beam-v1", str(target), "--db", str(beam_db)
    )
    assert code == 5
    assert "exists" in err


def test_snapshot_refuses_open_tag(tmp_path: Path, capsys) -> None:
    build_beam_db(tmp_path / "db", [1], "open-v1", lock=False).close()
    argv = ["conditions", "snapshot", "open-v1", str(tmp_path / "s"), "--db", str(tmp_path / "db")]
    code, _, err = _cli(capsys, *argv)
    assert code == 2
    assert "OPEN" in err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("since", ["-1", "5:-2", f"{2**31}"])
def test_since_out_of_range(tmp_path: Path, capsys, since: str) -> None:
    db = str(tmp_path / "db")
    np.savez(tmp_path / "a.npz", x=np.zeros(1))
    _cli(capsys, "conditions", "create", "v1", "--db", db)
    argv = ["conditions", "add", "v1", "calib", str(tmp_path / "a.npz"), f"--since={since}"]
    code, _, err = _cli(capsys, *argv, "--db", db)
    assert code == 2
    assert "since" in err
