"""A site: 50 concurrent jobs behind a real squid; the central server sees each URL once."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from condhelpers import read_output, run_fetchers, server_gets, write_probe

from hepstream.job.runner import JobSpec, run_job
from tests.support.squid import Squid

pytestmark = [pytest.mark.squid, pytest.mark.slow]
JOBS = 50


def test_fifty_jobs_at_one_site_reach_the_server_once_per_url(
    server, beam_db, multirun_sample, tmp_path, monkeypatch
) -> None:
    with Squid() as squid:
        proxy = {"HTTP_PROXY": squid.url, "http_proxy": squid.url, "NO_PROXY": "", "no_proxy": ""}
        # every job on its own worker node: its own empty disk cache
        caches = [tmp_path / f"node{i:02d}" for i in range(JOBS)]
        results = run_fetchers(JOBS, server.url, caches, tmp_path, **proxy)
        assert all(r == results[0] for r in results)
        urls = ["/gt/beam-v1", *(f"/payload/{sha}" for sha in results[0])]

        # one full job through the same squid, from its own empty cache
        for key, value in proxy.items():
            monkeypatch.setenv(key, value)
        spec = JobSpec(
            plugin=str(write_probe(tmp_path)),
            inputs=(str(multirun_sample),),
            output=str(tmp_path / "job.root"),
            conditions=(server.url,),
            global_tag="beam-v1",
            conditions_cache=str(tmp_path / "job-cache"),
            chunk_bytes=32_000,
        )
        report = run_job(spec)
        monkeypatch.undo()
        squid_lines = squid.access_lines()

    central = Counter(server_gets(Path(str(server.access_log))))
    assert central == Counter(urls)  # each URL exactly once at the central server
    seen = Counter(
        m.group(1).removeprefix(server.url)
        for line in squid_lines
        if (m := re.search(r" GET (\S+) ", line))
    )
    assert seen == Counter({url: JOBS + 1 for url in urls})  # every job asked the site squid
    hits = [line for line in squid_lines if "HIT/" in line]
    assert len(hits) >= JOBS  # the job after the 50 was served from squid's memory
    assert report.status == "ok"
    assert report.conditions["payloads_loaded"] == len(urls) - 1
    local = tmp_path / "local.root"
    run_job(JobSpec(**{**spec.__dict__, "output": str(local), "conditions": (str(beam_db),)}))
    assert read_output(tmp_path / "job.root") == read_output(local)
