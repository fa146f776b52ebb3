"""``hepstream bench storage --site-cache``: a cold and a warm pass through a real XCache.

A real origin (Debian's xrootd, every read traced) behind an emulated WAN link, and a real
:class:`~hepstream.tools.sitecache.SiteCache` in front of it (``tests.support.sitebed``): the
bench's own origin share (from the cache's records) is checked against the origin's trace.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from prochelpers import run_cli

from hepstream.cli import main
from hepstream.storagebench.cachepass import cache_record
from tests.support.sitebed import SiteBed, SiteLink

MC = "tau1n_mc_000.root"
MIB = 1 << 20


@pytest.fixture
def bed(sample_dir: Path) -> Iterator[SiteBed]:
    # its own work dir under /tmp: the daemons' user must reach the cache (not tmp_path, 0700)
    with SiteBed(sample_dir, [SiteLink("site", rtt_ms=10)]) as running:
        yield running


def _bench(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    code = main(["bench", "storage", *args, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


@pytest.mark.xrootd
def test_cold_then_warm_pass_and_the_origins_share(
    bed: SiteBed, sample_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = bed.site("site")
    size = (sample_dir / MC).stat().st_size
    doc = _bench(
        [bed.origin_url(MC), "--site-cache", site.cache.url,
         "--cache-dir", str(site.cache.cache_dir)],
        capsys,
    )  # fmt: skip
    assert doc["url"] == bed.origin_url(MC)
    assert doc["cache_url"] == site.cache_url(MC)
    assert doc["readers"] == 1
    assert doc["cached_before"] == 0.0  # planned at the origin: the cache first saw it cold
    cold, warm = doc["passes"]
    assert (cold["pass"], warm["pass"]) == ("cold", "warm")
    for one in (cold, warm):
        # one whole pass each: every request of the pattern once, every event once
        assert one["requests"] == doc["requests_per_pass"]
        assert one["events"] == doc["events_per_pass"] == 20_000
        assert one["failed"] == 0
        assert one["served_bytes"] == one["bytes_read"] >= doc["bytes_per_pass"]
    # cold: the cache fetched (whole 1 MiB blocks of) what it served; warm: nothing
    assert 0.9 <= cold["origin_share"] <= 1.2, cold
    assert warm["origin_bytes"] == 0
    assert warm["origin_share"] == 0.0
    # the cache's records agree with the origin's own trace: the origin read the file once
    traced = bed.origin_bytes()
    planning = traced - cold["origin_bytes"]  # the planning reads went to the origin
    assert 0 < planning < 8 * MIB  # metadata and read-ahead only, not the file
    assert size <= cold["origin_bytes"] <= -(-size // MIB) * MIB
    record = cache_record(site.cache.cache_dir, f"/data/{MC}")
    assert record is not None
    assert record.complete


@pytest.mark.xrootd
def test_without_the_cache_dir_the_share_is_unknown(bed: SiteBed) -> None:
    site = bed.site("site")
    done = run_cli(
        ["bench", "storage", bed.origin_url(MC), "--site-cache", site.cache.url,
         "--branches", "trk_*", "--max-jobs", "2"]
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {line.split("│")[1].strip(): line for line in done.stdout.splitlines() if "│" in line}
    assert set(rows) >= {"cold", "warm"}
    assert "unknown" in rows["cold"]
    assert "unknown" in rows["warm"]
    assert "run on the cache host with --cache-dir" in done.stdout
    assert "warm pass / cold pass:" in done.stdout
    assert "2 readers" in done.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--xrdcp"], "--xrdcp does not go with --site-cache"),
        (["--readahead-sweep", "0,1M"], "--readahead-sweep does not go with --site-cache"),
        (["--site-cache", "root://cache:1094/data"], "not a site cache address"),
    ],
)
def test_cache_runs_refuse_what_they_cannot_do(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["bench", "storage", "root://origin:1094//data/x.root"]
    if "--site-cache" not in extra:
        args += ["--site-cache", "root://cache:1094"]
    assert main([*args, *extra]) != 0
    assert message in capsys.readouterr().err


def test_cache_dir_needs_a_cache_and_a_remote_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "storage", "root://o:1094//data/x.root", "--cache-dir", str(tmp_path)])
    assert "--cache-dir goes with --site-cache" in capsys.readouterr().err
    local = tmp_path / "x.root"
    assert main(["bench", "storage", str(local), "--site-cache", "root://cache:1094"])
    assert "reads a root:// file through the cache" in capsys.readouterr().err
