"""The job agent baked into the image: read the job from the NoCloud seed, run it, power off.

systemd starts it at boot (``python -m vmimage.agent``). Every line it prints starts with
``hepstream-agent:`` and goes to the serial console; the last one is
``hepstream-agent: done status=ok|failed``. The same code runs on a host for tests with
``--user-data FILE --no-poweroff``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from hepstream.errors import ConfigError, OutputError
from hepstream.io.auth import install_credential
from hepstream.io.urls import is_remote
from hepstream.io.xrootd import upload
from hepstream.jobspec import ShippedJob
from vmimage.config import AGENT_PREFIX, SEED_LABEL


@dataclass(frozen=True)
class AgentConfig:
    """Where the agent looks and how long it waits."""

    seed_wait_s: float = 60.0  # udev may still be probing the seed disk when the unit starts
    next_job_timeout_s: float = 30.0  # an HTTP GET on the host loopback answers at once or never
    max_jobs: int = 1000  # a pool ends even if a broken server never answers 204
    workdir: Path = Path("/var/lib/hepstream")
    log_tail_lines: int = 20  # lines of a failed runner's output echoed to the console


def parse_user_data(text: str) -> dict[str, Any]:
    """The mapping in NoCloud user-data: JSON (after ``#`` comment lines) or YAML."""
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    try:
        data = json.loads(body) if body.strip() else {}
    except json.JSONDecodeError:
        try:  # an optional dependency, for user-data that is not JSON
            import yaml
        except ImportError as err:
            raise ConfigError("user-data is not JSON and PyYAML is not installed") from err
        data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ConfigError("user-data must be a mapping with a 'hepstream:' key")
    return data


def job_from_mapping(data: dict[str, Any]) -> ShippedJob:
    """Validate a ``hepstream:`` mapping (or a whole user-data mapping holding one)."""
    job = data.get("hepstream", data)
    if not isinstance(job, dict):
        raise ConfigError("user-data 'hepstream:' must be a mapping")
    missing = [k for k in ("inputs", "output", "report") if not job.get(k)]
    if missing:
        raise ConfigError(f"job spec lacks {', '.join(missing)}: add them under 'hepstream:'")
    return ShippedJob.from_mapping(job, where="user-data 'hepstream:'", site="vm")


def runner_command(job: ShippedJob, plugin: Path, output: Path, report: Path) -> list[str]:
    """``hepstream run`` of one job, writing output and report to local paths."""
    local = replace(job.spec, plugin=str(plugin), output=str(output), report=str(report))
    return [sys.executable, "-m", "hepstream", *local.to_argv()]


def _url_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1] or "output"


def failure_report(job: ShippedJob, error: str) -> dict[str, Any]:
    """The report the agent writes when the runner could not write its own."""
    return {
        "status": "failed",
        "error": error,
        "plugin": "<inline>" if job.plugin_source else job.spec.plugin,
        "output": job.spec.output,
        "site": job.spec.site,
        "owner": job.owner,
        "written_by": "hepstream-agent",
    }


def put(local: Path, dest: str) -> None:
    """Copy a local file to a ``root://`` URL (XRootD CopyProcess) or a path, atomically."""
    if is_remote(dest):
        upload(str(local), dest)  # temp name, size + adler32 verified, then renamed
        return
    target = Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    shutil.copyfile(local, tmp)
    tmp.replace(target)


def _write_report(path: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Write ``report`` to the job's local report file ``path``; returns it."""
    path.write_text(json.dumps(report, indent=2))
    return report


def _settled_report(job: ShippedJob, rc: int, path: Path) -> tuple[dict[str, Any], str]:
    """The runner's report (one written here if it left none) and the job's status: ``ok``
    only if the runner exited 0 and its report says ok; a report saying ok of a runner that
    failed is corrected."""
    report: dict[str, Any]
    try:
        report = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        report = _write_report(
            path, failure_report(job, f"runner exited {rc} without a readable report")
        )
    status = "ok" if rc == 0 and report.get("status") == "ok" else "failed"
    if status == "failed" and report.get("status") == "ok":
        report = _write_report(path, {**report, "status": "failed", "error": f"runner exited {rc}"})
    return report, status


class Agent:
    """Runs jobs and tells the console what happens."""

    def __init__(self, config: AgentConfig, out: TextIO | None = None) -> None:
        self.config = config
        self.out = out or sys.stdout

    def say(self, msg: str) -> None:
        print(f"{AGENT_PREFIX} {msg}", file=self.out, flush=True)

    def run_job(self, job: ShippedJob, index: int) -> dict[str, Any]:
        """Run one job; returns the summary the console's ``result`` line carries."""
        work = self.config.workdir / f"job-{index}"
        plugin = self._prepare(job, work)
        out_local = work / _url_name(job.output)
        report_local = work / "report.json"
        report_local.unlink(missing_ok=True)
        cmd = runner_command(job, plugin, out_local, report_local)
        self.say(f"job {index} start inputs={len(job.inputs)} site={job.site}")
        t0 = time.monotonic()
        log_path = work / "runner.log"
        with log_path.open("w") as log:
            rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
        wall = time.monotonic() - t0
        if rc != 0:
            tail = log_path.read_text(errors="replace").splitlines()[-self.config.log_tail_lines :]
            for line in tail:
                self.say(f"| {line}")
        report, status = _settled_report(job, rc, report_local)
        try:
            if status == "ok":
                put(out_local, job.output)
        except OutputError as err:
            status = "failed"
            report = _write_report(report_local, {**report, "status": "failed", "error": str(err)})
        try:
            put(report_local, job.report)
        except OutputError as err:
            self.say(f"job {index} report upload failed: {err}")
            status = "failed"
        summary = {
            "job": index,
            "status": status,
            "error": report.get("error"),
            "exit_code": rc,
            "wall_s": round(wall, 2),
            "events_read": report.get("events_read"),
            "events_per_s": report.get("events_per_s"),
            "runner_wall_s": report.get("wall_s"),
            "output": job.output,
            "report": job.report,
        }
        self.say("result " + json.dumps(summary, sort_keys=True))
        return summary

    def _prepare(self, job: ShippedJob, work: Path) -> Path:
        """The job's directory and its sss key in place; the plugin file the runner loads
        (written there when the job ships its source)."""
        work.mkdir(parents=True, exist_ok=True)
        if job.plugin_source:
            plugin = work / "plugin.py"
            plugin.write_text(job.plugin_source)
        else:
            plugin = Path(str(job.plugin))
        if job.sss_keytab:  # before any XRootD client in this process logs in
            install_credential(job.sss_keytab, self.config.workdir / "sss.keytab")
        return plugin

    def _report_crash(self, job: ShippedJob, index: int, error: str) -> None:
        """Best effort: put a failure report where the user expects the job's report."""
        path = self.config.workdir / f"job-{index}" / "agent-failure.json"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_report(path, failure_report(job, error))
            put(path, job.report)
        except Exception as err:
            self.say(f"job {index} failure report not delivered: {err}")

    def next_job(self, url: str) -> ShippedJob | None:
        """Ask the pool server for another job: 200 with a spec, or 204 when none is left."""
        try:
            with urllib.request.urlopen(url, timeout=self.config.next_job_timeout_s) as resp:
                if resp.status == 204:
                    return None
                return job_from_mapping(json.loads(resp.read() or b"{}"))
        except (urllib.error.URLError, OSError, json.JSONDecodeError) as err:
            self.say(f"next job from {url} failed: {err}")
            return None

    def run(self, first: ShippedJob) -> str:
        """Run the first job and, in pool mode, the ones the pool hands out; overall status."""
        statuses = []
        job: ShippedJob | None = first
        index = 0
        while job is not None and index < self.config.max_jobs:
            try:
                statuses.append(self.run_job(job, index)["status"])
            except Exception as err:  # the agent must always report and power off
                self.say(f"job {index} crashed: {type(err).__name__}: {err}")
                statuses.append("failed")
                self._report_crash(job, index, f"agent crashed: {type(err).__name__}: {err}")
            index += 1
            url = first.next_job_url
            job = self.next_job(url) if first.mode == "pool" and url else None
        return "ok" if statuses and all(s == "ok" for s in statuses) else "failed"


def find_seed(label: str = SEED_LABEL, wait_s: float = 60.0) -> Path:
    """The device of the NoCloud seed disk, found by its filesystem label."""
    end = time.monotonic() + wait_s
    while True:
        proc = subprocess.run(["blkid", "-L", label], capture_output=True, text=True)
        if proc.returncode == 0 and proc.stdout.strip():
            return Path(proc.stdout.strip())
        if time.monotonic() > end:
            raise ConfigError(f"no disk labelled {label!r}: attach a cloud-localds seed")
        time.sleep(1.0)


def read_seed(device: Path) -> str:
    """user-data of the seed disk, mounted read-only just long enough to read it."""
    mnt = Path(tempfile.mkdtemp(prefix="hepstream-seed-"))
    subprocess.run(["mount", "-o", "ro", str(device), str(mnt)], check=True)
    try:
        return (mnt / "user-data").read_text()
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        mnt.rmdir()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the systemd unit (and of host tests with ``--user-data``)."""
    ap = argparse.ArgumentParser(prog="python -m vmimage.agent", description=__doc__)
    ap.add_argument("--user-data", type=Path, help="read this file instead of the seed disk")
    ap.add_argument("--workdir", type=Path, default=AgentConfig.workdir)
    ap.add_argument("--no-poweroff", action="store_true", help="do not power the machine off")
    args = ap.parse_args(argv)
    config = AgentConfig(workdir=args.workdir)
    agent = Agent(config)
    agent.say("start")
    status = "failed"
    try:
        if args.user_data:
            text = args.user_data.read_text()
        else:
            device = find_seed(wait_s=config.seed_wait_s)
            agent.say(f"seed {device}")
            text = read_seed(device)
        job = job_from_mapping(parse_user_data(text))
        status = agent.run(job)
    except Exception as err:  # report anything, then still power off
        agent.say(f"error: {type(err).__name__}: {err}")
    agent.say(f"done status={status}")
    if not args.no_poweroff:
        subprocess.run(["systemctl", "--no-block", "poweroff"], check=False)
    return 0 if status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
