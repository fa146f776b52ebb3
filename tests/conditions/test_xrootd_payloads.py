"""Payloads content-addressed on XRootD storage: the job reads them from there."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from condhelpers import read_output, server_gets, write_probe

from hepstream.job.runner import JobSpec, run_job
from hepstream.tools.serve import XRootDServer

pytestmark = pytest.mark.xrootd


def test_payloads_from_xrootd_global_tag_from_the_service(
    server, beam_db, multirun_sample, tmp_path
) -> None:
    served = Path(tempfile.mkdtemp(prefix="hepstream-cond-xrd-"))
    try:
        served.chmod(0o755)
        shutil.copytree(beam_db / "payloads", served / "payloads")
        for path in [served / "payloads", *(served / "payloads").rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        probe = write_probe(tmp_path)

        def job(name: str, sources: tuple[str, ...]):
            return run_job(
                JobSpec(
                    plugin=str(probe),
                    inputs=(str(multirun_sample),),
                    output=str(tmp_path / f"{name}.root"),
                    conditions=sources,
                    global_tag="beam-v1",
                    conditions_cache=str(tmp_path / f"cache-{name}"),
                    chunk_bytes=32_000,
                )
            )

        with XRootDServer(served) as xrd:
            report = job("xrd", (xrd.data_url("payloads"), server.url))
        local = job("local", (str(beam_db),))
    finally:
        shutil.rmtree(served, ignore_errors=True)
    assert read_output(tmp_path / "xrd.root") == read_output(tmp_path / "local.root")
    assert report.conditions["iov_hash"] == local.conditions["iov_hash"]
    assert sorted(report.conditions["sources"]) == sorted([xrd.data_url("payloads"), server.url])
    assert server_gets(Path(str(server.access_log))) == ["/gt/beam-v1"]  # no payload over HTTP
