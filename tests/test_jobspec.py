"""The one job record: every field survives the command line and the mapping form."""

from __future__ import annotations

import dataclasses
import json

import pytest
import typer

from hepstream.cli.analyst import run, spec_from_options
from hepstream.errors import ConfigError
from hepstream.io import StreamConfig
from hepstream.jobspec import INLINE_PLUGIN, JobSpec, ShippedJob, validate_spec

#: A value different from the default for EVERY setting. A new field without a value here
#: fails ``test_every_field_is_set_off_its_default``, so the round trips below cover it.
STREAM = StreamConfig(
    readahead=123_456,
    cache=7_654_321,
    coalesce_gap=1000,
    parallel_requests=3,
    max_request_bytes=500_000,
    timeout=17,
    connection_retry=5,
    connection_window=4,
    retries=1,
    retry_backoff=0.25,
    site_cache="root://xcache.example:1094",
    cache_fallback=False,
)
FULL = JobSpec(
    plugin="/opt/sel.py",
    inputs=("root://127.0.0.1:1094//data/a.root", "/data/b.root"),
    output="out/o.root",
    report="out/r.json",
    site="site-x",
    stream=STREAM,
    auto_cache=False,
    chunk_bytes=3 << 20,
    prefetch=3,
    open_ahead=5,
    fetch_ahead=0,
    decompress_threads=7,
    entry_ranges=((0, 1000), (500, None)),
    skip_bad_files=True,
    histograms_only=True,
    compression="lz4:4",
    workers=3,
    conditions=("http://127.0.0.1:8080", "/opt/conditions-snapshot"),
    global_tag="data-v3",
    allow_open_tag=True,
    conditions_cache="/var/cache/hepstream-conditions",
)


def _cli(argv: list[str]) -> JobSpec:
    """Parse ``hepstream run`` arguments with the real command's parser, then build."""
    command = typer.main.get_command_from_info(
        typer.models.CommandInfo(callback=run), pretty_exceptions_short=True, rich_markup_mode=None
    )
    assert argv[0] == "run"
    params = command.make_context("run", argv[1:]).params
    params.pop("as_json")
    params.pop("progress")
    return spec_from_options(**params)


def test_every_field_is_set_off_its_default():
    default = JobSpec(plugin="p", inputs=("i",), output="o")
    for f in dataclasses.fields(JobSpec):
        assert getattr(FULL, f.name) != getattr(default, f.name), f.name
    for f in dataclasses.fields(StreamConfig):
        assert getattr(STREAM, f.name) != getattr(default.stream, f.name), f"stream.{f.name}"


def test_every_field_round_trips_through_the_command_line():
    assert _cli(FULL.to_argv()) == FULL


def test_auto_cache_with_a_non_default_cache_round_trips():
    spec = dataclasses.replace(FULL, auto_cache=True)
    assert "--cache" not in spec.to_argv()
    assert _cli(spec.to_argv()) == spec


def test_every_field_round_trips_through_the_mapping_and_json():
    assert JobSpec.from_mapping(json.loads(json.dumps(FULL.to_mapping()))) == FULL


def test_a_minimal_spec_has_a_short_command_line():
    spec = JobSpec("sel.py", ("a.root",), "o.root", site="s")
    assert spec.to_argv() == ["run", "sel.py", "a.root", "-o", "o.root", "--site", "s",
                              "--no-progress"]  # fmt: skip
    assert spec.to_mapping() == {"plugin": "sel.py", "inputs": ["a.root"], "output": "o.root",
                                 "site": "s"}  # fmt: skip
    assert _cli(spec.to_argv()) == spec


def test_mapping_accepts_command_line_names_units_and_a_stream_table():
    spec = JobSpec.from_mapping(
        {"plugin": "p.py", "inputs": "a.root", "output": "o", "readahead": "256k",
         "cache": "4M", "chunk": "1M", "stream": {"timeout": 5}, "fetch_ahead": "3"}
    )  # fmt: skip
    assert spec.inputs == ("a.root",)
    assert (spec.stream.readahead, spec.stream.cache, spec.stream.timeout) == (
        256 << 10,
        4 << 20,
        5,
    )
    assert (spec.auto_cache, spec.chunk_bytes, spec.fetch_ahead) == (False, 1 << 20, 3)


@pytest.mark.parametrize(
    ("mapping", "match"),
    [
        ({"plugin": "p", "inputs": ["a"], "output": "o", "condtions": "x"}, "unknown key.*condtions"),
        ({"plugin": "p", "inputs": ["a"]}, "lacks output"),
        ({"plugin": "p", "inputs": ["a"], "output": "o", "prefetch": "many"}, "prefetch='many'"),
        ({"plugin": "p", "inputs": ["a"], "output": "o", "stream.cache": "lots"}, "'lots'"),
        ({"plugin": "p", "inputs": ["a"], "output": "o", "entry_ranges": [[0, 5], [5, 9]]},
         "2 range"),
        ({"plugin": "p", "inputs": ["d/*.root"], "output": "o", "entry_ranges": "0:5"}, "globs"),
        ({"plugin": "p", "inputs": ["a"], "output": "o", "entry_ranges": "9:5"}, "start <= stop"),
        ([1, 2], "must be a mapping"),
    ],
)  # fmt: skip
def test_bad_mappings_name_the_key(mapping, match):
    with pytest.raises(ConfigError, match=match):
        JobSpec.from_mapping(mapping)


def test_set_option_errors_are_config_errors(capsys):
    from hepstream.cli import main

    assert main(["run", "p.py", "a.root", "-o", "o.root", "--set", "fetch_ahead"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err
    assert main(["run", "p.py", "a.root", "-o", "o.root", "--set", "nope=1"]) == 2
    assert "unknown key(s) nope" in capsys.readouterr().err


def test_validate_spec_is_the_one_validation():
    with pytest.raises(ConfigError, match="no input"):
        validate_spec(JobSpec("p", (), "o"))
    with pytest.raises(ConfigError, match="open_ahead"):
        JobSpec.from_mapping({"plugin": "p", "inputs": ["a"], "output": "o", "open_ahead": 0})


def test_shipped_job_round_trips_with_inline_plugin_and_pool_mode():
    shipped = ShippedJob(
        dataclasses.replace(FULL, plugin=INLINE_PLUGIN),
        plugin_source="x = 1\n",
        owner="alice",
        mode="pool",
        next_job_url="http://127.0.0.1:9/next",
    )
    mapping = json.loads(json.dumps(shipped.to_mapping()))
    assert "plugin" not in mapping
    assert ShippedJob.from_mapping(mapping) == shipped
    assert (shipped.inputs, shipped.report, shipped.site) == (FULL.inputs, FULL.report, "site-x")


def test_shipped_job_default_site_applies_only_when_none_given():
    base = {"plugin": "p", "inputs": ["a"], "output": "o"}
    assert ShippedJob.from_mapping(base, site="vm").site == "vm"
    assert ShippedJob.from_mapping({**base, "site": "c1"}, site="vm").site == "c1"
