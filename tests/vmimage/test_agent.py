"""The job agent on the host: parsing, the runner command, a real job, pool mode."""

from __future__ import annotations

import http.server
import io
import json
import threading
from pathlib import Path
from typing import ClassVar

import pytest

from hepstream.errors import ConfigError
from vmimage.agent import (
    Agent,
    AgentConfig,
    job_from_mapping,
    main,
    parse_user_data,
    runner_command,
)
from vmimage.qemu import user_data

ROOT = Path(__file__).resolve().parents[2]
TAU1N = ROOT / "examples" / "tau1n.py"


def _job(**kw):
    base = {"inputs": ["root://h//data/a.root"], "output": "/o.root", "report": "/r.json"}
    return {**base, "plugin": "/opt/p.py", **kw}


def test_user_data_from_start_vm_parses_back():
    job = _job(site="cloud-a", readahead=1 << 20)
    assert parse_user_data(user_data(job)) == {"hepstream": job}


def test_yaml_user_data():
    text = "#cloud-config\nhepstream:\n  plugin: /opt/p.py\n  inputs: [a.root]\n  output: o\n  report: r\n"
    spec = job_from_mapping(parse_user_data(text))
    assert spec.inputs == ("a.root",)
    assert spec.plugin == "/opt/p.py"


@pytest.mark.parametrize(
    ("job", "match"),
    [
        ({"inputs": ["a"], "output": "o", "report": "r"}, "plugin"),
        ({"plugin": "p", "output": "o", "report": "r"}, "inputs"),
        (_job(mode="swarm"), "mode"),
    ],
)
def test_bad_job_specs_name_the_problem(job, match):
    with pytest.raises(ConfigError, match=match):
        job_from_mapping({"hepstream": job})


def test_runner_command_passes_every_option():
    spec = job_from_mapping(_job(site="s1", readahead=1024, cache=4096))
    cmd = runner_command(spec, Path("/p.py"), Path("/w/o.root"), Path("/w/r.json"))
    assert cmd[1:4] == ["-m", "hepstream", "run"]
    assert "root://h//data/a.root" in cmd
    for opt, val in (
        ("-o", "/w/o.root"),
        ("--report", "/w/r.json"),
        ("--site", "s1"),
        ("--readahead", "1024"),
        ("--cache", "4096"),
    ):
        assert cmd[cmd.index(opt) + 1] == val


@pytest.mark.slow
def test_agent_runs_a_real_job_and_returns_output(sample_dir, tmp_path, capsys):
    dest = tmp_path / "user"
    job = {
        "plugin_source": TAU1N.read_text(),
        "inputs": [str(sample_dir / "tau1n_mc_000.root")],
        "output": str(dest / "out.root"),
        "report": str(dest / "report.json"),
        "site": "host",
    }
    ud = tmp_path / "user-data"
    ud.write_text(user_data(job))
    rc = main(["--user-data", str(ud), "--workdir", str(tmp_path / "w"), "--no-poweroff"])
    lines = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert lines[-1] == "hepstream-agent: done status=ok"
    report = json.loads((dest / "report.json").read_text())
    assert report["status"] == "ok"
    assert report["site"] == "host"
    assert report["events_read"] == 20_000
    assert (dest / "out.root").stat().st_size > 0


@pytest.mark.slow
def test_failed_job_still_returns_a_failure_report(tmp_path, capsys):
    dest = tmp_path / "user"
    job = {
        "plugin_source": "x = 1\n",
        "inputs": [str(tmp_path / "missing.root")],
        "output": str(dest / "out.root"),
        "report": str(dest / "report.json"),
    }
    ud = tmp_path / "user-data"
    ud.write_text(user_data(job))
    rc = main(["--user-data", str(ud), "--workdir", str(tmp_path / "w"), "--no-poweroff"])
    out = capsys.readouterr().out
    assert rc == 1
    assert out.splitlines()[-1] == "hepstream-agent: done status=failed"
    report = json.loads((dest / "report.json").read_text())
    assert report["status"] == "failed"
    assert report["error"]
    assert not (dest / "out.root").exists()


class _Pool(http.server.BaseHTTPRequestHandler):
    jobs: ClassVar[list[dict]] = []
    served: ClassVar[int] = 0

    def do_GET(self):
        if self.jobs:
            body = json.dumps({"hepstream": self.jobs.pop(0)}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(204)
            self.end_headers()
        type(self).served += 1

    def log_message(self, *args):
        pass


def test_pool_mode_fetches_jobs_until_204(tmp_path, monkeypatch):
    """Each job fails fast (no such input); what matters is how many the pool handed out."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Pool)
    _Pool.jobs = [
        _job(
            plugin_source="x = 1\n",
            inputs=[str(tmp_path / f"m{i}.root")],
            report=str(tmp_path / f"r{i}.json"),
        )
        for i in (1, 2)
    ]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/next"
        first = job_from_mapping(
            _job(
                plugin_source="x = 1\n",
                mode="pool",
                next_job_url=url,
                inputs=[str(tmp_path / "m0.root")],
                report=str(tmp_path / "r0.json"),
            )
        )
        out = io.StringIO()
        status = Agent(AgentConfig(workdir=tmp_path / "w"), out).run(first)
    finally:
        server.shutdown()
        server.server_close()
    assert status == "failed"
    results = [line for line in out.getvalue().splitlines() if " result " in line]
    assert len(results) == 3
    assert _Pool.served == 3  # two jobs, then 204
    assert all((tmp_path / f"r{i}.json").exists() for i in range(3))


@pytest.mark.xrootd
def test_agent_takes_the_users_key_from_the_seed_and_never_prints_it(
    sample_dir, tmp_path, xrootd_server, sss_credential
):
    """A fresh agent process without ``$XrdSecsssKT`` uploads with the key its seed carries."""
    import os
    import stat
    import subprocess
    import sys

    from hepstream.io.auth import KEYTAB_ENV, with_credential

    job = with_credential(
        {  # what the local cloud driver puts in a VM's seed
            "plugin_source": TAU1N.read_text(),
            "inputs": [xrootd_server.data_url("tau11_mc_000.root")],
            "output": xrootd_server.out_url("agent/out.root"),
            "report": xrootd_server.out_url("agent/report.json"),
            "site": "host",
        }
    )
    key = sss_credential.read_text()
    assert job["sss_keytab"] == key
    ud = tmp_path / "user-data"
    ud.write_text(user_data(job))
    env = {k: v for k, v in os.environ.items() if k not in (KEYTAB_ENV, "XrdSecSSSKT")}
    env["HOME"] = str(tmp_path)
    work = tmp_path / "w"
    proc = subprocess.run(
        [sys.executable, "-m", "vmimage.agent", "--user-data", str(ud), "--workdir", str(work),
         "--no-poweroff"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == "hepstream-agent: done status=ok"
    secret = key.split("k:")[1].split()[0]
    served = xrootd_server.out_path("agent")
    for text in (proc.stdout, proc.stderr, (served / "report.json").read_text()):
        assert secret not in text
    assert json.loads((served / "report.json").read_text())["status"] == "ok"
    assert stat.S_IMODE((work / "sss.keytab").stat().st_mode) == 0o600
    assert "sss_keytab" not in repr(job_from_mapping(job))
