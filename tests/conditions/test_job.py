"""The job side against a local conditions directory: per-piece payloads, provenance, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import uproot
from condhelpers import CALIB_PLUGIN, PER_BASKET, PER_RUN, PROBE, RUNS, write_probe

from hepstream.cli import main
from hepstream.conditions.job import METADATA_KEY
from hepstream.conditions.sample import beam_scale, build_beam_db
from hepstream.conditions.store import Store
from hepstream.errors import ConfigError, InputError, PluginError
from hepstream.job.runner import JobSpec, run_job


def _probe(tmp_path: Path, subrun: str | None = None) -> Path:
    return write_probe(tmp_path, subrun)


def _job(plugin, sample, out, conditions, gt="beam-v1", **kw) -> JobSpec:
    """A job over ``sample``; the probe's three branches take 16 bytes an event, so the
    default chunk size gives one chunk per 2000-event cluster."""
    kw.setdefault("chunk_bytes", 16 * PER_BASKET)
    return JobSpec(
        plugin=str(plugin), inputs=(str(sample),), output=str(out), conditions=tuple(conditions),
        global_tag=gt, **kw,
    )  # fmt: skip


def test_chunk_spanning_runs_gets_each_runs_payload(multirun_sample, beam_db, tmp_path) -> None:
    out = tmp_path / "probe.root"
    report = run_job(_job(_probe(tmp_path), multirun_sample, out, [str(beam_db)]))
    with uproot.open(multirun_sample) as f:
        truth = f["events"].arrays(["run", "event"], library="np")
    with uproot.open(out) as f:
        got = f["events"].arrays(["run", "event", "scale"], library="np")
        meta = json.loads(str(f[METADATA_KEY]))
    # independent computation: a dict from run to calibration, event by event
    expected = np.array([beam_scale(int(r)) for r in truth["run"]])
    assert np.array_equal(got["event"], truth["event"])
    assert np.array_equal(got["scale"], expected)
    # chunks are single clusters of 2000 events and runs change every 3000: the changes at
    # 3000 and 9000 fall inside a chunk (split in two), the one at 6000 on a chunk edge
    chunks = -(-len(expected) // PER_BASKET)
    inside = [k * PER_RUN for k in range(1, len(RUNS)) if (k * PER_RUN) % PER_BASKET]
    assert inside == [3000, 9000]
    assert report.conditions["pieces"] == chunks + len(inside)
    assert report.conditions["payloads_loaded"] == len(RUNS)
    assert meta == {k: report.conditions[k] for k in ("global_tag", "status", "iov_hash", "iovs")}
    assert [iov["since"] for iov in meta["iovs"]] == [f"{r}:0" for r in RUNS]


def test_subrun_iovs_against_a_tuple_comparison(multirun_sample, tmp_path) -> None:
    sinces = [(10_000, 0), (10_000, 2), (10_001, 1), (10_003, 0)]
    store = Store(tmp_path / "db", create=True)
    store.create("sub-v1")
    for k, since in enumerate(sinces):
        np.savez(tmp_path / f"p{k}.npz", ebeam_scale=np.float64(1.0 + k / 100))
        store.add("sub-v1", "beam", tmp_path / f"p{k}.npz", since)
    store.lock("sub-v1")
    store.close()
    out = tmp_path / "sub.root"
    spec = _job(_probe(tmp_path, "subrun"), multirun_sample, out, [str(tmp_path / "db")], "sub-v1")
    run_job(spec)
    with uproot.open(multirun_sample) as f:
        truth = f["events"].arrays(["run", "subrun"], library="np")
    want = [
        1.0 + max(k for k, s in enumerate(sinces) if s <= (int(r), int(sr))) / 100
        for r, sr in zip(truth["run"], truth["subrun"], strict=True)
    ]
    with uproot.open(out) as f:
        assert np.array_equal(f["events"]["scale"].array(library="np"), np.array(want))


def test_calibrated_example_and_parquet_metadata(multirun_sample, beam_db, tmp_path) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "calib.parquet"
    report = run_job(_job(CALIB_PLUGIN, multirun_sample, out, [str(beam_db)], chunk_bytes=8 << 20))
    assert report.status == "ok"
    assert 0 < report.events_selected < report.events_read
    table = pq.read_table(out)
    meta = json.loads(pq.read_metadata(out).metadata[METADATA_KEY.encode()])
    assert meta["iov_hash"] == report.conditions["iov_hash"]
    cols = table.to_pydict()
    with uproot.open(multirun_sample) as f:
        t = f["events"].arrays(["run", "event", "ebeam"], library="np")
    by_event = dict(zip(t["event"].tolist(), zip(t["run"], t["ebeam"], strict=True), strict=True))
    for event, cal in zip(cols["event"], cols["ebeam_cal"], strict=True):
        run, ebeam = by_event[event]
        assert cal == pytest.approx(float(ebeam) * beam_scale(int(run)), rel=1e-6)


def _no_output(out: Path) -> None:
    assert not out.exists()
    left = out.parent.iterdir() if out.parent.exists() else []
    assert [p.name for p in left if p.name.startswith(f".{out.name}")] == []


def test_open_global_tag_refused_unless_allowed(multirun_sample, tmp_path, capsys) -> None:
    build_beam_db(tmp_path / "db", RUNS, "beam-dev", lock=False).close()
    out, report = tmp_path / "out" / "o.root", tmp_path / "r.json"
    argv = ["run", str(CALIB_PLUGIN), str(multirun_sample), "-o", str(out), "--report",
            str(report), "--conditions", str(tmp_path / "db"), "--global-tag", "beam-dev"]  # fmt: skip
    assert main(argv) == ConfigError.exit_code
    assert "global tag beam-dev is OPEN" in capsys.readouterr().err
    assert json.loads(report.read_text())["status"] == "failed"
    _no_output(out)
    assert main([*argv, "--allow-open-tag", "--no-progress"]) == 0
    assert json.loads(report.read_text())["conditions"]["status"] == "OPEN"


def test_missing_iov_names_run_and_record(multirun_sample, tmp_path, capsys) -> None:
    build_beam_db(tmp_path / "db", RUNS[1:]).close()  # nothing for run 10000
    out = tmp_path / "out" / "o.root"
    argv = ["run", str(CALIB_PLUGIN), str(multirun_sample), "-o", str(out), "--conditions",
            str(tmp_path / "db"), "--global-tag", "beam-v1", "--no-progress"]  # fmt: skip
    assert main(argv) == InputError.exit_code
    err = capsys.readouterr().err
    assert "hepstream: error: no IOV of record 'beam'" in err
    assert "covers run 10000 sub-run 0" in err
    _no_output(out)


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_damaged_snapshot_payload_is_named(multirun_sample, beam_db, tmp_path, capsys) -> None:
    with Store(beam_db) as store:
        gt = store.global_tag("beam-v1")
        victim = gt.tags["beam"].iovs[2].payload
        path = store.payload_file(gt.payloads[victim])
    _flip_a_byte(path)
    out = tmp_path / "out" / "o.root"
    argv = ["run", str(CALIB_PLUGIN), str(multirun_sample), "-o", str(out), "--conditions",
            str(beam_db), "--global-tag", "beam-v1", "--no-progress"]  # fmt: skip
    assert main(argv) == InputError.exit_code
    assert f"payload {victim}: checksum mismatch" in capsys.readouterr().err
    _no_output(out)


def test_declaration_errors(multirun_sample, beam_db, tmp_path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(PROBE.format(subrun="lumi", gate=None))
    with pytest.raises(PluginError, match="subrun_branch 'lumi' is not in branches"):
        run_job(_job(bad, multirun_sample, tmp_path / "o.root", [str(beam_db)]))
    with pytest.raises(ConfigError, match=r"needs conditions \['beam'\]: pass --conditions"):
        run_job(_job(_probe(tmp_path), multirun_sample, tmp_path / "o.root", []))
    build_beam_db(tmp_path / "db2", RUNS, "other").close()
    plugin = tmp_path / "other.py"
    plugin.write_text(PROBE.format(subrun=None, gate=None).replace('["beam"]', '["align"]'))
    spec = _job(plugin, multirun_sample, tmp_path / "o.root", [str(tmp_path / "db2")], "other")
    with pytest.raises(ConfigError, match="has no tag for record"):
        run_job(spec)
    _no_output(tmp_path / "o.root")


def test_payload_outside_select_is_a_plugin_error() -> None:
    import hepstream

    class Plain(hepstream.Selection):
        branches = ["run"]  # noqa: RUF012
        conditions = ["beam"]  # noqa: RUF012

    with pytest.raises(PluginError, match=r"payload\('beam'\) is available only inside select"):
        Plain().payload("beam")


def test_payloads_handed_by_hand_reach_payload() -> None:
    """``set_payloads`` is the public hand-off the runner uses; a test drives select() so."""
    import hepstream

    class Plain(hepstream.Selection):
        branches = ["run"]  # noqa: RUF012
        conditions = ["beam"]  # noqa: RUF012

    plain = Plain()
    plain.set_payloads({"beam": {"ebeam_scale": 1.01}})
    assert plain.payload("beam") == {"ebeam_scale": 1.01}
    plain.set_payloads(None)
    with pytest.raises(PluginError, match=r"payload\('beam'\) is available only inside select"):
        plain.payload("beam")
