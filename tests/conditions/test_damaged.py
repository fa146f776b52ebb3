"""Damaged conditions as users meet them, through the real CLI: a payload file that is not
what its name says (``conditions add``), a payload published damaged (its bytes match their
SHA-256, so only parsing finds it), a damaged snapshot, a damaged cached global tag. Each is
one ``hepstream: error:`` line naming the file and what to do, its exit code, nothing at the
output path, no temp file left, never a traceback."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import sqlite3
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from condhelpers import CALIB_PLUGIN, RUNS, server_gets
from prochelpers import one_error_line

from hepstream.cli import main
from hepstream.conditions.payload import write_stream


def _npz(compressed: bool = False, **arrays: object) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def _flip(data: bytes, at: int | None = None) -> bytes:
    damaged = bytearray(data)
    damaged[len(data) // 2 if at is None else at] ^= 0xFF
    return bytes(damaged)


def _bad_deflate_block(data: bytes, member: str) -> bytes:
    """``data`` with the first deflate block of ``member`` marked as the reserved type 3."""
    offset = zipfile.ZipFile(io.BytesIO(data)).getinfo(member).header_offset
    name, extra = struct.unpack("<HH", data[offset + 26 : offset + 30])
    start = offset + 30 + name + extra
    return data[:start] + bytes([data[start] | 0b110]) + data[start + 1 :]


def _npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.arange(3.0))
    return buffer.getvalue()


#: An .npz like the beam payloads, with a member large enough that the middle byte is data.
GOOD = _npz(ebeam_scale=np.float64(1.0), pad=np.arange(100.0))
GOOD_COMPRESSED = _npz(True, ebeam_scale=np.float64(1.0), pad=np.arange(1000.0))
#: (file suffix, bytes, what the line says): payload files damaged in every way we know.
DAMAGED_PAYLOADS = {
    "npz-truncated": (".npz", GOOD[: len(GOOD) * 6 // 10], "File is not a zip file"),
    "npz-crc": (".npz", _flip(GOOD), "member 'pad': Bad CRC-32"),
    "npz-deflate": (
        ".npz",
        _bad_deflate_block(GOOD_COMPRESSED, "pad.npy"),
        "member 'pad': Error -3 while decompressing data: invalid block type",
    ),
    "npz-not-a-zip": (".npz", b"not a zip at all", "not a zip archive"),
    "npz-empty": (".npz", b"", "empty (0 bytes)"),
    "npz-pickled": (
        ".npz",
        _npz(ebeam_scale=np.array([{"x": 1}], dtype=object)),
        "member 'ebeam_scale': Object arrays cannot be loaded when allow_pickle=False",
    ),
    "npz-is-npy": (".npz", _npy(), "not a zip archive (it starts with b'\\x93NUMPY"),
    "json-truncated": (".json", b'{"ebeam_scale": 1.', "Expecting"),
    "json-not-json": (".json", b"ebeam_scale = 1.0", "Expecting value"),
    "json-not-utf8": (".json", b"\xff\xfe\x00garbage", "not a JSON document"),
}
#: The kind the database records differs from what the bytes are.
WRONG_KIND = {
    "kind-npz-holds-json": (".npz", b'{"ebeam_scale": 1.0}', "not a zip archive"),
    "kind-json-holds-npz": (".json", GOOD, "not a JSON document"),
}


def _cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.rglob("*") if ".part" in p.name or ".hepstream-" in p.name]


# -- authoring: `hepstream conditions add` refuses a damaged file -------------------------------


@pytest.mark.parametrize("case", list(DAMAGED_PAYLOADS))
def test_add_refuses_a_damaged_payload_file(tmp_path: Path, capsys, case: str) -> None:
    suffix, data, says = DAMAGED_PAYLOADS[case]
    db, payload = tmp_path / "db", tmp_path / f"beam{suffix}"
    payload.write_bytes(data)
    assert _cli(capsys, "conditions", "create", "v1", "--db", db)[0] == 0
    code, _, err = _cli(
        capsys, "conditions", "add", "v1", "beam", payload, "--since", "1", "--db", db
    )
    line = one_error_line(code, err, 2, str(payload), says)
    assert ("numpy .npz archive" if suffix == ".npz" else "JSON document") in line
    shown = json.loads(_cli(capsys, "conditions", "show", "v1", "--db", db, "--json")[1])
    assert shown["tags"] == {}
    assert not [p for p in db.rglob("*") if p.is_file() and p.name != "conditions.sqlite"]


# -- a job meets a payload published damaged -----------------------------------------------------


def _publish_raw(db: Path, data: bytes, kind: str, run: int) -> str:
    """Point ``run``'s IOV at ``data`` as a tool that never parses payloads would publish it:
    the file under its SHA-256, a payload row of ``kind``, the IOV repointed."""
    sha = hashlib.sha256(data).hexdigest()
    write_stream(db / "payloads", sha, [data])
    with contextlib.closing(sqlite3.connect(db / "conditions.sqlite")) as conn, conn:
        conn.execute("INSERT OR IGNORE INTO payload VALUES (?, ?, ?)", (sha, kind, len(data)))
        conn.execute("UPDATE iov SET payload = ? WHERE since_run = ?", (sha, run))
    return sha


def _run_argv(sample: Path, out: Path, report: Path, conditions: object) -> list[object]:
    return [
        "run",
        CALIB_PLUGIN,
        sample,
        "-o",
        out,
        "--report",
        report,
        "--conditions",
        conditions,
        "--global-tag",
        "beam-v1",
        "--no-progress",
    ]


@pytest.mark.parametrize("case", [*DAMAGED_PAYLOADS, *WRONG_KIND])
def test_job_names_a_payload_published_damaged(
    multirun_sample, beam_db, tmp_path, capsys, case: str
) -> None:
    suffix, data, says = {**DAMAGED_PAYLOADS, **WRONG_KIND}[case]
    sha = _publish_raw(beam_db, data, suffix[1:], RUNS[2])
    out, report = tmp_path / "out" / "o.root", tmp_path / "r.json"
    code, _, err = _cli(capsys, *_run_argv(multirun_sample, out, report, beam_db))
    line = one_error_line(code, err, 3, f"payload {sha} of record beam", str(beam_db), says)
    assert "add a good file (hepstream conditions add) to a new global tag" in line
    assert json.loads(report.read_text())["error"] == line.removeprefix("hepstream: error: ")
    assert not out.exists()
    assert _leftovers(tmp_path) == []


# -- damaged snapshots ---------------------------------------------------------------------------


def _sqlite(snap: Path) -> Path:
    return snap / "conditions.sqlite"


def _payload_files(snap: Path) -> list[Path]:
    return sorted(p for p in (snap / "payloads").rglob("*") if p.is_file())


def _truncate(path: Path, fraction: float = 0.6) -> None:
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * fraction)])


def _flip_every_page(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for at in range(100, len(data), 97):
        data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def _newer_file_format(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[18:20] = b"\x03\x03"  # SQLite's write and read format versions: from the future
    path.write_bytes(bytes(data))


def _sql(path: Path, *statements: str) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("PRAGMA foreign_keys = OFF")
        for statement in statements:
            conn.execute(statement)


#: How a snapshot gets damaged, and what the line names besides "take the snapshot again".
DAMAGED_SNAPSHOTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "sqlite-truncated": (lambda s: _truncate(_sqlite(s)), "database disk image is malformed"),
    "sqlite-bytes-flipped": (lambda s: _flip_every_page(_sqlite(s)), "malformed"),
    "sqlite-empty": (lambda s: _sqlite(s).write_bytes(b""), "no such table"),
    "sqlite-not-a-database": (
        lambda s: _sqlite(s).write_text("conditions"),
        "file is not a database",
    ),
    "sqlite-newer-file-format": (
        lambda s: _newer_file_format(_sqlite(s)),
        "file is not a database",
    ),
    "sqlite-other-schema": (lambda s: _sql(_sqlite(s), "DROP TABLE iov"), "no such table: iov"),
    "payload-row-missing": (
        lambda s: _sql(
            _sqlite(s), "DELETE FROM payload WHERE sha256 = (SELECT min(payload) FROM iov)"
        ),
        "has an IOV of record beam",
    ),
    "payload-file-missing": (lambda s: _payload_files(s)[0].unlink(), "is missing from"),
    "payloads-dir-missing": (lambda s: shutil.rmtree(s / "payloads"), "is missing from"),
    "payload-file-flipped": (
        lambda s: _payload_files(s)[0].write_bytes(_flip(_payload_files(s)[0].read_bytes())),
        "checksum mismatch",
    ),
    "payload-file-truncated": (lambda s: _truncate(_payload_files(s)[0]), "checksum mismatch"),
}


@pytest.mark.parametrize("case", list(DAMAGED_SNAPSHOTS))
def test_damaged_snapshot_is_one_line(
    multirun_sample, beam_db, tmp_path, capsys, case: str
) -> None:
    snap = tmp_path / "snap"
    assert _cli(capsys, "conditions", "snapshot", "beam-v1", snap, "--db", beam_db)[0] == 0
    damage, says = DAMAGED_SNAPSHOTS[case]
    named = str(_sqlite(snap)) if case.startswith(("sqlite", "payload-row")) else str(snap)
    damage(snap)
    out, report = tmp_path / "out" / "o.root", tmp_path / "r.json"
    code, _, err = _cli(capsys, *_run_argv(multirun_sample, out, report, snap))
    one_error_line(code, err, 3, named, says, "take the snapshot again")
    assert json.loads(report.read_text())["status"] == "failed"
    assert not out.exists()
    # a copy of the damaged snapshot is refused the same way, and leaves no temp directory
    code, _, err = _cli(
        capsys, "conditions", "snapshot", "beam-v1", tmp_path / "copy", "--db", snap
    )
    one_error_line(code, err, 3, named, says, "take the snapshot again")
    assert not (tmp_path / "copy").exists()
    assert _leftovers(tmp_path) == []


# -- the HTTP client's cached global tag ---------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "not-a-document"])
def test_damaged_cached_global_tag_is_fetched_again(
    server, multirun_sample, tmp_path, capsys, monkeypatch, damage: str
) -> None:
    monkeypatch.setenv("HEPSTREAM_CONDITIONS_CACHE", str(tmp_path / "cache"))
    argv = _run_argv(multirun_sample, tmp_path / "a.root", tmp_path / "a.json", server.url)
    assert _cli(capsys, *argv)[0] == 0
    (document,) = (tmp_path / "cache" / "gt").rglob("beam-v1.json")
    if damage == "truncated":
        _truncate(document)
    else:
        document.write_text('["beam-v1"]')
    before = len(server_gets(Path(str(server.access_log))))
    argv[argv.index(tmp_path / "a.root")] = tmp_path / "b.root"
    code, _, err = _cli(capsys, *argv)
    assert code == 0, err
    assert server_gets(Path(str(server.access_log)))[before:] == ["/gt/beam-v1"]
    assert json.loads(document.read_text())["name"] == "beam-v1"
