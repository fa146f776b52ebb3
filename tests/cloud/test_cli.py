"""``hepstream cloud`` commands end to end in-process (fake clouds)."""

import json

import pytest

from hepstream.cli import main
from hepstream.cloud.model import VMSpec
from hepstream.cloud.policy import load_config
from hepstream.cloud.queues.local import LocalQueue

CONFIG = """
[shim]
id = "cli"
state = "state.sqlite"

[[cloud]]
name = "nrc"
quota = 2
priority = 1

[[cloud]]
name = "ec2"
quota = 1
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "cloud.toml"
    path.write_text(CONFIG)
    return path


def run_json(capsys, *args):
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def test_queue_add_list_and_plan(config, capsys):
    ids = run_json(
        capsys,
        "cloud",
        "queue",
        "add",
        "-c",
        str(config),
        "--image",
        "img",
        "--owner",
        "alice",
        "--plugin",
        "sel.py",
        "--input",
        "root://h//a.root",
        "--output",
        "out.parquet",
        "--count",
        "4",
        "--json",
    )
    assert len(ids) == 4
    listed = run_json(capsys, "cloud", "queue", "list", "-c", str(config), "--json")
    assert [j["status"] for j in listed] == ["idle"] * 4
    assert listed[0]["job"]["inputs"] == ["root://h//a.root"]
    actions = run_json(capsys, "cloud", "plan", "-c", str(config), "--json")
    boots = [a for a in actions if a["action"] == "boot"]
    assert [b["cloud"] for b in boots] == ["nrc", "nrc", "ec2"]
    assert all(b["reason"] for b in boots)
    (wait,) = [a for a in actions if a["action"] == "wait"]
    assert wait["jobs"] == 1
    # a dry run changes nothing
    assert (
        run_json(capsys, "cloud", "queue", "list", "-c", str(config), "--status", "idle", "--json")
        == listed
    )
    assert main(["cloud", "plan", "-c", str(config)]) == 0
    assert "boot" in capsys.readouterr().out


def test_status_aggregates_reports_per_site(config, capsys):
    cfg = load_config(config)
    queue = LocalQueue(cfg.state_path)
    spec = VMSpec("img", 1, 2048, "alice")
    for site, eps in [("nrc", 100.0), ("nrc", 120.0), ("ec2", 430.0)]:
        job = queue.add(spec, {})
        queue.finish(job, {"status": "ok", "site": site, "events_per_s": eps, "kb_per_s": eps * 4})
    queue.finish(queue.add(spec, {}), {"status": "failed", "site": "ec2", "error": "x"})
    data = run_json(capsys, "cloud", "status", "-c", str(config), "--json")
    assert data["jobs"] == {"done": 3, "failed": 1}
    assert data["sites"]["nrc"]["jobs"] == 2
    assert data["sites"]["nrc"]["events_per_s_mean"] == 110.0
    assert data["sites"]["nrc"]["kb_per_s_sum"] == 880.0
    assert data["sites"]["ec2"]["events_per_s_mean"] == 430.0
    assert data["quota"] == {"nrc": 2, "ec2": 1}
    assert main(["cloud", "status", "-c", str(config)]) == 0
    assert "ev/s" in capsys.readouterr().out


def test_run_once_boots_on_the_fake_cloud(config, capsys):
    LocalQueue(load_config(config).state_path).add(VMSpec("img"), {})
    assert main(["cloud", "run", "-c", str(config), "--once"]) == 0
    data = run_json(capsys, "cloud", "status", "-c", str(config), "--json")
    assert data["vms"]["nrc"] == {"starting": 1}


def test_missing_config_is_one_line_error(tmp_path, capsys):
    assert main(["cloud", "plan", "-c", str(tmp_path / "nope.toml")]) == 2
    err = capsys.readouterr().err
    assert "not found" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("cmd", ["plan", "run", "status", "simulate", "queue"])
def test_help_has_an_example(cmd, capsys):
    assert main(["cloud", cmd, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Example" in out or "Commands" in out
