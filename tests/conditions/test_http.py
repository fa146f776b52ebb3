"""The conditions service as a real process on loopback: caching headers, the job over
HTTP, the shared disk cache, damaged transfers, and the server killed mid-run."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from condhelpers import read_output, run_fetchers, server_gets, write_probe

from hepstream.cli import main
from hepstream.conditions.server import IMMUTABLE, REVALIDATE, ConditionsServer
from hepstream.conditions.store import Store
from hepstream.job.runner import JobSpec, run_job

CHUNK = "32000"  # one 2000-event cluster per chunk for the probe's 16-byte events


def _get(url: str, **headers: str) -> httpx.Response:
    return httpx.get(url, headers=headers, timeout=10, trust_env=False)


def test_cache_headers_and_revalidation(server, beam_db, tmp_path) -> None:
    gt = _get(f"{server.url}/gt/beam-v1")
    assert gt.status_code == 200
    assert gt.headers["cache-control"] == IMMUTABLE
    etag = gt.headers["etag"]
    assert etag == f'"{hashlib.sha256(gt.content).hexdigest()}"'
    again = _get(f"{server.url}/gt/beam-v1", **{"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""

    sha = next(iter(gt.json()["payloads"]))
    body = _get(f"{server.url}/payload/{sha}")
    assert body.status_code == 200
    assert body.headers["cache-control"] == IMMUTABLE
    assert body.headers["etag"] == f'"{sha}"'
    assert hashlib.sha256(body.content).hexdigest() == sha
    assert _get(f"{server.url}/payload/{sha}", **{"If-None-Match": f'"{sha}"'}).status_code == 304
    missing = _get(f"{server.url}/payload/{'0' * 64}")
    assert missing.status_code == 404
    assert missing.headers["cache-control"] == "no-store"

    # an OPEN tag: short max-age, must revalidate, and its ETag follows its content
    np.savez(tmp_path / "x.npz", ebeam_scale=np.float64(1.0))
    with Store(beam_db) as store:
        store.create("dev")
        store.add("dev", "beam", tmp_path / "x.npz", (1, 0))
    first = _get(f"{server.url}/gt/dev")
    assert first.headers["cache-control"] == REVALIDATE
    assert (
        _get(f"{server.url}/gt/dev", **{"If-None-Match": first.headers["etag"]}).status_code == 304
    )
    with Store(beam_db) as store:
        store.add("dev", "beam", tmp_path / "x.npz", (2, 0))
    changed = _get(f"{server.url}/gt/dev", **{"If-None-Match": first.headers["etag"]})
    assert changed.status_code == 200
    assert len(changed.json()["tags"]["beam"]["iovs"]) == 2


def _spec(plugin, sample, out, conditions, cache) -> JobSpec:
    return JobSpec(
        plugin=str(plugin),
        inputs=(str(sample),),
        output=str(out),
        conditions=tuple(conditions),
        global_tag="beam-v1",
        conditions_cache=str(cache),
        chunk_bytes=int(CHUNK),
    )


def test_job_over_http_matches_local_and_warm_cache_skips_server(
    server, beam_db, multirun_sample, tmp_path
) -> None:
    probe = write_probe(tmp_path)
    local = run_job(
        _spec(probe, multirun_sample, tmp_path / "local.root", [str(beam_db)], tmp_path / "c0")
    )
    cold = run_job(
        _spec(probe, multirun_sample, tmp_path / "cold.root", [server.url], tmp_path / "c1")
    )
    gets = server_gets(Path(str(server.access_log)))
    payload_gets = [g for g in gets if g.startswith("/payload/")]
    assert len(payload_gets) == len(set(payload_gets)) == cold.conditions["payloads_loaded"] == 4
    warm = run_job(
        _spec(probe, multirun_sample, tmp_path / "warm.root", [server.url], tmp_path / "c1")
    )
    # the warm job asked nothing: LOCKED global tag and payloads came from its disk cache
    assert server_gets(Path(str(server.access_log))) == gets
    reference = read_output(tmp_path / "local.root")
    assert read_output(tmp_path / "cold.root") == reference
    assert read_output(tmp_path / "warm.root") == reference
    assert (
        local.conditions["iov_hash"] == cold.conditions["iov_hash"] == warm.conditions["iov_hash"]
    )
    assert cold.conditions["sources"] == [server.url]
    assert not list((tmp_path / "c1").rglob("*.part"))


def test_damaged_transfer_names_the_payload(
    server, beam_db, multirun_sample, tmp_path, capsys
) -> None:
    with Store(beam_db) as store:
        gt = store.global_tag("beam-v1")
        victim = gt.tags["beam"].iovs[1].payload
        path = store.payload_file(gt.payloads[victim])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    out, cache = tmp_path / "out" / "o.root", tmp_path / "cache"
    argv = [
        "run",
        str(write_probe(tmp_path)),
        str(multirun_sample),
        "-o",
        str(out),
        "--conditions",
        server.url,
        "--global-tag",
        "beam-v1",
        "--chunk",
        CHUNK,
        "--no-progress",
    ]
    os.environ["HEPSTREAM_CONDITIONS_CACHE"] = str(cache)
    try:
        code = main(argv)
    finally:
        del os.environ["HEPSTREAM_CONDITIONS_CACHE"]
    assert code == 3
    assert f"payload {victim}: checksum mismatch in transfer" in capsys.readouterr().err
    assert not out.exists()
    assert not list(out.parent.glob(".o.root*"))
    cached = {p.name for p in (cache / "payloads").rglob("*") if p.is_file()}
    assert victim not in cached
    assert not [n for n in cached if n.endswith(".part")]


def test_concurrent_jobs_share_one_disk_cache(server, tmp_path) -> None:
    cache = tmp_path / "shared-cache"
    results = run_fetchers(8, server.url, [cache], tmp_path)
    assert all(r == results[0] for r in results)
    assert len(results[0]) == 4
    payload_gets = [g for g in server_gets(Path(str(server.access_log))) if "/payload/" in g]
    assert sorted(payload_gets) == sorted(f"/payload/{sha}" for sha in results[0])
    assert not list(cache.rglob("*.part"))


def _gated_job(probe, sample, out, sources, cache, gate) -> subprocess.Popen:
    argv = [
        sys.executable,
        "-m",
        "hepstream",
        "run",
        str(probe),
        str(sample),
        "-o",
        str(out),
        "--global-tag",
        "beam-v1",
        "--chunk",
        CHUNK,
        "--no-progress",
        "--json",
    ]
    for source in sources:
        argv += ["--conditions", source]
    env = dict(
        os.environ, HEPSTREAM_CONDITIONS_CACHE=str(cache), PYTHONPATH=os.pathsep.join(sys.path)
    )
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _wait_for(path: Path, procs: list[subprocess.Popen], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        for proc in procs:
            assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.slow
def test_server_killed_mid_run_jobs_finish_from_cache_or_snapshot(
    beam_db, multirun_sample, tmp_path
) -> None:
    snapshot = tmp_path / "snapshot"
    assert main(["conditions", "snapshot", "beam-v1", str(snapshot), "--db", str(beam_db)]) == 0
    probe, gated = write_probe(tmp_path), write_probe(tmp_path, gate=str(tmp_path / "gate"))
    run_job(_spec(probe, multirun_sample, tmp_path / "ref.root", [str(beam_db)], tmp_path / "c0"))
    log = tmp_path / "access.log"
    with ConditionsServer(beam_db, access_log=log) as srv:
        # warm a cache with one complete job, then start two jobs that block in chunk 1
        run_job(_spec(probe, multirun_sample, tmp_path / "w.root", [srv.url], tmp_path / "warm"))
        jobs = {
            "cache": _gated_job(
                gated,
                multirun_sample,
                tmp_path / "a.root",
                [srv.url],
                tmp_path / "warm",
                tmp_path / "gate",
            ),
            "snapshot": _gated_job(
                gated,
                multirun_sample,
                tmp_path / "b.root",
                [srv.url, str(snapshot)],
                tmp_path / "cold",
                tmp_path / "gate",
            ),
        }
        try:
            _wait_for(Path(f"{tmp_path / 'gate'}.started"), list(jobs.values()))
            time.sleep(1.0)  # both jobs have their global tag and run 10000's payload
            srv.kill()
            Path(f"{tmp_path / 'gate'}.go").touch()
            results = {k: p.communicate(timeout=120) for k, p in jobs.items()}
        finally:
            for proc in jobs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
    for name, (_out, err) in results.items():
        assert jobs[name].returncode == 0, f"{name}: {err}"
    reference = read_output(tmp_path / "ref.root")
    assert read_output(tmp_path / "a.root") == reference
    assert read_output(tmp_path / "b.root") == reference
    snap_report = json.loads(results["snapshot"][0])
    assert str(snapshot) in snap_report["conditions"]["sources"]  # later payloads came from it
    cache_report = json.loads(results["cache"][0])
    assert cache_report["conditions"]["sources"] == [srv.url]  # served by its disk cache


def test_damaged_cache_entry_is_fetched_again(server, multirun_sample, tmp_path) -> None:
    probe, cache = write_probe(tmp_path), tmp_path / "cache"
    run_job(_spec(probe, multirun_sample, tmp_path / "first.root", [server.url], cache))
    cached = sorted(p for p in (cache / "payloads").rglob("*") if p.is_file())
    assert len(cached) == 4
    data = bytearray(cached[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    cached[0].write_bytes(bytes(data))
    before = server_gets(Path(str(server.access_log)))
    run_job(_spec(probe, multirun_sample, tmp_path / "second.root", [server.url], cache))
    again = server_gets(Path(str(server.access_log)))[len(before) :]
    assert [g for g in again if g.startswith("/payload/")] == [f"/payload/{cached[0].name}"]
    assert hashlib.sha256(cached[0].read_bytes()).hexdigest() == cached[0].name
    assert read_output(tmp_path / "second.root") == read_output(tmp_path / "first.root")


def test_snapshot_from_the_service_equals_the_database(server, beam_db, tmp_path) -> None:
    target = tmp_path / "snap"
    argv = [
        "conditions",
        "snapshot",
        "beam-v1",
        str(target),
        "--from",
        server.url,
        "--cache",
        str(tmp_path / "cache"),
    ]
    assert main(argv) == 0
    with Store(beam_db) as a, Store(target) as b:
        gt = a.global_tag("beam-v1")
        assert b.global_tag("beam-v1") == gt
        for payload in gt.payloads.values():
            want = a.payload_file(payload).read_bytes()
            assert b.payload_file(payload).read_bytes() == want
