"""Jobs read through a real site cache (Debian's xrootd as XCache) in front of a real origin.

Every job here is a real ``hepstream run`` process (or a real :class:`RemoteInput`) against
real daemons on 127.0.0.1, with a test-sized policy (5 s timeout, no retries): the cache
serving what it holds, passed over when it is down, a dead origin behind a live cache, and
short answers that are never taken for data.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import awkward as ak
import pytest
from prochelpers import one_error_line

from hepstream.errors import ConfigError, InputError
from hepstream.io.config import StreamConfig
from hepstream.io.viacache import OriginUnreachable, RemoteInput, own_link
from hepstream.io.xrootd import ShortRead, XRootDBackend, configure_client, forget_gone
from hepstream.jobspec import JobSpec, parse_set
from hepstream.tools.generate import generate_sample
from hepstream.tools.serve import XRootDServer
from hepstream.tools.sitecache import SiteCache

PLUGIN = Path(__file__).resolve().parents[2] / "examples" / "tau1n.py"
#: A policy that makes every wait seconds long: one try of 5 s.
TIGHT = ["--set", "stream.timeout=5", "--set", "stream.retries=0"]
#: Seconds a whole ``hepstream run`` process may take here (interpreter and plugin start
#: included): every job below reads two small files or fails within one 5 s timeout.
JOB_S = 60


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    """Two small samples (4,000 events, 1,000 per basket) the xrootd user can read."""
    base = Path(tempfile.mkdtemp(prefix="hepstream-site-cache-"))
    base.chmod(0o755)
    try:
        for seed, name in enumerate(("a.root", "b.root")):
            generate_sample(base / name, "tau1n-mc", 4_000, seed=40 + seed, events_per_basket=1_000)
            (base / name).chmod(0o644)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def origin(data_dir):
    with XRootDServer(data_dir) as server:
        yield server


@pytest.fixture
def cache(origin, base):
    with SiteCache(origin.url, base / "cache") as site_cache:
        yield site_cache


@pytest.fixture(autouse=True)
def _servers_forgotten():
    """A test that finds a server gone (in this process) leaves no trace for the next."""
    yield
    forget_gone()


def _run(out: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, dict, float]:
    """``hepstream run`` of the tau1n plugin into ``out`` (report beside it), a process of
    its own: exit code, stderr, the report and the seconds the process took."""
    report = out.with_suffix(".json")
    argv = ["run", str(PLUGIN), *args, "-o", str(out), "--report", str(report), "--no-progress"]
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "hepstream", *argv, *TIGHT],
        capture_output=True,
        text=True,
        timeout=JOB_S,
        env={**os.environ, "HEPSTREAM_SITE_CACHE": "", **(env or {})},  # only what we set
    )
    elapsed = time.monotonic() - began
    return done.returncode, done.stderr, json.loads(report.read_text()), elapsed


def _same_output(a: Path, b: Path) -> None:
    """The same events and the same bytes in every buffer of every selected column."""
    left, right = ak.from_parquet(a), ak.from_parquet(b)
    assert len(left) == len(right) > 0
    form_l, length_l, buffers_l = ak.to_buffers(left)
    form_r, length_r, buffers_r = ak.to_buffers(right)
    assert (form_l, length_l) == (form_r, length_r)
    assert buffers_l.keys() == buffers_r.keys()
    for key, buffer in buffers_l.items():
        assert bytes(buffer) == bytes(buffers_r[key]), key


def _no_output(out: Path) -> None:
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir() if ".part" in p.name] == []


# -- a job through the cache ------------------------------------------------------------
def test_a_job_reads_through_the_cache_as_it_reads_the_origin(origin, cache, tmp_path):
    inputs = [origin.data_url("a.root"), origin.data_url("b.root")]
    code, err, direct, _ = _run(tmp_path / "direct.parquet", *inputs)
    assert code == 0, err
    assert (direct["via_cache"], direct["cache_bytes"]) == (None, 0)
    assert direct["origin_bytes"] == direct["bytes_read"] > 0

    setting = ["--set", f"stream.site_cache={cache.url}"]
    code, err, cached, _ = _run(tmp_path / "cached.parquet", *inputs, *setting)
    assert code == 0, err
    assert cached["via_cache"] == cache.url
    assert cached["cache_fallback"] is None
    assert cached["cache_bytes"] == cached["bytes_read"] == direct["bytes_read"]
    assert (cached["origin_bytes"], cached["short_reads"]) == (0, 0)
    assert f"cache    {cache.url}" in err  # the summary names the cache
    _same_output(tmp_path / "cached.parquet", tmp_path / "direct.parquet")
    # the cache's own record of what it holds: both files, part of each (the plan's blocks)
    held = sorted(p.name for p in (cache.cache_dir / "data").iterdir())
    assert held == ["a.root", "a.root.cinfo", "b.root", "b.root.cinfo"]

    # a site sets it in the environment; the analyst changes nothing
    env = {"HEPSTREAM_SITE_CACHE": cache.url}
    code, err, warm, _ = _run(tmp_path / "env.parquet", *inputs, "--workers", "2", env=env)
    assert code == 0, err
    assert (warm["via_cache"], warm["origin_bytes"]) == (cache.url, 0)
    assert warm["cache_bytes"] == direct["bytes_read"]
    _same_output(tmp_path / "env.parquet", tmp_path / "direct.parquet")


# -- the cache down -----------------------------------------------------------------------
def test_a_stopped_cache_is_passed_over_for_the_origin(origin, cache, tmp_path):
    inputs = [origin.data_url("a.root"), origin.data_url("b.root")]
    code, err, direct, direct_s = _run(tmp_path / "direct.parquet", *inputs)
    assert code == 0, err
    down = cache.url
    cache.stop()

    code, err, report, fallback_s = _run(
        tmp_path / "fallback.parquet", *inputs, "--set", f"stream.site_cache={down}"
    )
    assert code == 0, err
    assert report["status"] == "ok"
    assert report["via_cache"] == down
    assert report["cache_fallback"] == (
        f"site cache {down} refused the connection; read from the origin"
    )
    assert report["cache_fallback"] in err  # the summary says so too
    assert report["cache_bytes"] == 0
    assert report["origin_bytes"] == report["bytes_read"] == direct["bytes_read"]
    _same_output(tmp_path / "fallback.parquet", tmp_path / "direct.parquet")
    # a refused cache costs a TCP connect, not the client's 10 s connection window
    assert fallback_s < direct_s + 5, (fallback_s, direct_s)


def test_a_down_cache_without_fallback_fails_the_job(origin, tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        nobody = f"root://127.0.0.1:{sock.getsockname()[1]}"
    out = tmp_path / "out.parquet"
    settings = ["--set", f"stream.site_cache={nobody}", "--set", "stream.cache_fallback=false"]
    code, err, report, elapsed = _run(out, origin.data_url("a.root"), *settings)
    line = one_error_line(code, err, 75, nobody, "refused the connection", "stream.cache_fallback")
    assert report["status"] == "failed"
    assert report["error"] == line.removeprefix("hepstream: error: ")
    _no_output(out)
    assert elapsed < 20


# -- the origin going away behind a live cache ----------------------------------------------
def test_a_dead_origin_behind_the_cache(origin, cache, tmp_path):
    a, b = origin.data_url("a.root"), origin.data_url("b.root")
    setting = ["--set", f"stream.site_cache={cache.url}"]
    code, err, _, _ = _run(tmp_path / "warm.parquet", a, *setting)  # warms A's blocks only
    assert code == 0, err
    origin_url = origin.url
    origin.stop()

    # A: every block the job needs is in the cache
    code, err, report, _ = _run(tmp_path / "a.parquet", a, *setting)
    assert code == 0, err
    assert report["cache_bytes"] > 0
    assert report["origin_bytes"] == 0
    _same_output(tmp_path / "a.parquet", tmp_path / "warm.parquet")

    # B: nothing of it is cached: one line naming both, within the 5 s timeout
    out = tmp_path / "b.parquet"
    code, err, report, elapsed = _run(out, b, *setting)
    line = one_error_line(code, err, 75, cache.url, origin_url, b, "could not reach the origin")
    assert "--skip-bad-files" in line
    assert report["status"] == "failed"
    assert report["origin_bytes"] == 0  # never read from the (dead) origin directly
    _no_output(out)
    assert elapsed < 5 + 15, elapsed  # the timeout, plus the interpreter and plugin start

    # A and B, skipping what cannot be read: A's events, B listed
    out = tmp_path / "ab.parquet"
    code, err, report, _ = _run(out, a, b, *setting, "--skip-bad-files")
    assert code == 6, err
    assert report["status"] == "partial"
    files = {f["path"]: f for f in report["files"]}
    assert files[a]["status"] == "ok"
    assert files[b]["status"] == "skipped"
    assert "could not reach the origin" in files[b]["error"]
    _same_output(out, tmp_path / "warm.parquet")


def test_an_uncached_range_of_a_cached_file_fails_within_the_timeout(origin, cache, data_dir):
    configure_client(2, 10)
    config = StreamConfig(site_cache=cache.url, timeout=3, retries=0)
    url = origin.data_url("a.root")
    local = (data_dir / "a.root").read_bytes()
    first = RemoteInput(url, config)
    try:
        assert first.readv(((0, 100_000),)) == [local[:100_000]]  # cached from now on
    finally:
        first.close()
    origin.stop()
    reader = RemoteInput(url, config)
    try:
        assert reader.readv(((0, 100_000),)) == [local[:100_000]]  # still served
        began = time.monotonic()
        with pytest.raises(OriginUnreachable, match="could not reach the origin") as caught:
            reader.readv(((len(local) - 300_000, len(local) - 200_000),))
        assert time.monotonic() - began < 3 + 2 * 2 + 2  # the timeout and two probes
        assert cache.url in str(caught.value)
        assert (reader.cache_bytes, reader.origin_bytes) == (100_000, 0)
    finally:
        reader.close()


# -- short answers are never data --------------------------------------------------------
@pytest.fixture
def copies(base, data_dir) -> Path:
    """A data directory of its own, whose files a test may cut."""
    directory = base / "copies"
    directory.mkdir()
    directory.chmod(0o755)
    shutil.copy(data_dir / "a.root", directory / "a.root")
    (directory / "a.root").chmod(0o666)
    return directory


def test_a_short_answer_is_never_data(copies):
    size = (copies / "a.root").stat().st_size
    with XRootDServer(copies) as server:
        url = server.data_url("a.root")
        backend = XRootDBackend(url, timeout=5)
        # no site cache, so no origin to ask again: the job gets the short answer's line
        reader = RemoteInput(url, StreamConfig(site_cache=None))
        try:
            assert backend.size == reader.size == size
            data = backend.read(0, size)
            # a range past the end may be short by exactly what lies past the end
            assert backend.read(size - 10, size + 100) == data[-10:]
            os.truncate(copies / "a.root", size // 2)  # after the clients' stat said `size`
            with pytest.raises(ShortRead) as caught:
                backend.read(size // 2 - 1000, size // 2 + 1000)
            line = str(caught.value)
            assert f"answered 1,000 of the 2,000 bytes asked at offset {size // 2 - 1000:,}" in line
            assert url in line
            # xrootd itself refuses a vector read over the cut ("illegal seek"): no data
            # either (a cache's short vector read is checked below)
            with pytest.raises(InputError, match="illegal seek"):
                backend.readv(((0, 100), (size // 2 - 100, size // 2 + 100)))
            with pytest.raises(ShortRead, match="answered 0 of the 100 bytes"):
                reader.readv(((size - 100, size),))
            assert reader.short_reads == 0  # nothing to ask again: it is the origin
        finally:
            backend.close()
            reader.close()


def test_the_origin_gives_the_bytes_a_cache_answered_short(copies, base):
    data = (copies / "a.root").read_bytes()
    size = len(data)
    with XRootDServer(copies) as origin, SiteCache(origin.url, base / "cache") as cache:
        url = origin.data_url("a.root")
        config = StreamConfig(site_cache=cache.url, timeout=5, retries=0)
        warm = RemoteInput(url, config)
        try:
            assert warm.readv(((0, size),)) == [data]  # the whole file is in the cache now
        finally:
            warm.close()
        copy = cache.cache_dir / "data" / "a.root"
        deadline = time.monotonic() + 10
        while copy.stat().st_size < size:  # the cache writes its blocks behind the answer
            assert time.monotonic() < deadline, "the cache never wrote its copy"
            time.sleep(0.05)
        reader = RemoteInput(url, config)
        vector = RemoteInput(url, config)
        try:
            assert reader.size == size
            # the cache's copy cut on its disk: it answers a read SUCCESS with 0 bytes, as
            # xrootd 5.5.3 does with its RAM exhausted (xrootd#2308)
            os.truncate(copy, 1_000_000)
            assert reader.readv(((1_500_000, 1_600_000),)) == [data[1_500_000:1_600_000]]
            assert (reader.short_reads, reader.origin_bytes) == (1, 100_000)
            assert reader.cache_fallback is None  # the cache still serves the rest
            assert reader.readv(((0, 1000),)) == [data[:1000]]
            assert reader.cache_bytes == 1000

            # a vector read over the cut the cache refuses ("illegal seek"): it answers, so
            # does the origin, so the rest of that file is read from the origin
            wanted = ((1_500_000, 1_600_000), (size - 50_000, size))
            assert vector.readv(wanted) == [data[a:b] for a, b in wanted]
            assert vector.origin_bytes == 150_000
            assert vector.cache_fallback.startswith(f"site cache {cache.url} failed a request")
            assert vector.cache_fallback.endswith("; read from the origin")

            # the origin's copy cut too: one line, no data
            os.truncate(copies / "a.root", 1_000_000)
            with pytest.raises(InputError) as caught:
                reader.readv(((1_200_000, 1_300_000),))
            line = str(caught.value)
            assert line.startswith(f"{url}: the site cache {cache.url} answered 0 of the ")
            assert "100,000 bytes asked at offset 1,200,000" in line
            assert "and the origin 0 of 100,000" in line
            assert "no data was used" in line
            assert reader.short_reads == 2
        finally:
            reader.close()
            vector.close()


# -- the settings ------------------------------------------------------------------------
def test_the_site_cache_setting(monkeypatch):
    monkeypatch.delenv("HEPSTREAM_SITE_CACHE", raising=False)
    assert StreamConfig().site_cache is None
    assert StreamConfig(site_cache=" root://c.example:1094/ ").site_cache == (
        "root://c.example:1094"
    )
    assert StreamConfig(site_cache="").site_cache is None
    for bad in ("c.example:1094", "root://c.example", "root://c.example:1094//data", "http://c:1"):
        with pytest.raises(ConfigError, match="root://host:port"):
            StreamConfig(site_cache=bad)
    monkeypatch.setenv("HEPSTREAM_SITE_CACHE", "root://env.example:2094")
    assert StreamConfig().site_cache == "root://env.example:2094"
    monkeypatch.setenv("HEPSTREAM_SITE_CACHE", "nonsense")
    with pytest.raises(ConfigError, match="HEPSTREAM_SITE_CACHE='nonsense'"):
        StreamConfig()
    monkeypatch.delenv("HEPSTREAM_SITE_CACHE")

    # --set, as hepstream run and dataset split take it, and back to the command line
    base = {"plugin": "p.py", "inputs": ["root://o:1094//data/a.root"], "output": "o.parquet"}
    spec = JobSpec.from_mapping(
        {
            **base,
            **parse_set(["stream.site_cache=root://c.example:1094", "stream.cache_fallback=false"]),
        }
    )
    assert (spec.stream.site_cache, spec.stream.cache_fallback) == ("root://c.example:1094", False)
    argv = spec.to_argv()
    assert "stream.site_cache=root://c.example:1094" in argv
    assert "stream.cache_fallback=false" in argv
    assert JobSpec.from_mapping(spec.to_mapping()) == spec
    with pytest.raises(ConfigError, match="stream option site_cache='nope'"):
        JobSpec.from_mapping({**base, "stream.site_cache": "nope"})
    # a machine whose default is a cache: a job that says none keeps none
    monkeypatch.setenv("HEPSTREAM_SITE_CACHE", "root://env.example:2094")
    none = JobSpec.from_mapping({**base, **parse_set(["stream.site_cache="])})
    assert none.stream.site_cache is None
    assert "stream.site_cache=" in none.to_argv()
    assert JobSpec.from_mapping(none.to_mapping()).stream.site_cache is None


def test_each_file_reaches_the_cache_on_a_link_of_its_own():
    a = own_link("root://cache.example:1094//data/a.root")
    assert a.startswith("root://hs")
    assert a.endswith("@cache.example:1094//data/a.root")
    assert own_link("root://cache.example:1094//data/a.root") == a  # one link per file
    assert own_link("root://cache.example:1094//data/b.root") != a
    assert own_link("root://someone@cache.example:1094//data/a.root") == a


def test_the_warmed_connection_is_the_one_the_input_opens() -> None:
    """The job warms up (while its plugin loads) exactly the connection its first input then
    reads on: the same per-file user name at the cache."""
    from hepstream.io.viacache import cache_link

    url = "root://central:1094//data/a.root"
    link = cache_link(url, "root://127.0.0.1:9/")
    assert link.startswith("root://hs")
    assert link.endswith("@127.0.0.1:9//data/a.root")
    assert cache_link(url, "root://127.0.0.1:9") == link
    assert cache_link("root://central:1094//data/b.root", "root://127.0.0.1:9") != link
    assert cache_link(url, None) == url
    assert cache_link("/local/a.root", "root://127.0.0.1:9") == "/local/a.root"
