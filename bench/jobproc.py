"""``hepstream run`` as a child process, the way a batch job runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.conftest import PLUGIN, REPO
from hepstream.jobspec import JobSpec

#: GNU time measures the child's own peak RSS; the job report's ``ru_maxrss`` cannot be
#: trusted here because Linux carries the forking parent's high-water mark across exec.
GNU_TIME = "/usr/bin/time"


@dataclass(frozen=True)
class JobRun:
    """One finished child job."""

    report: dict
    #: Seconds from spawn to exit: interpreter start and imports included.
    process_s: float
    #: Peak resident memory of the job process (MB, 2**20 bytes).
    peak_rss_mb: float
    #: Who measured it: GNU time from outside, or the job report when time is missing.
    rss_source: str


def run_subprocess(
    inputs: list[str], workdir: Path, *, env: dict[str, str] | None = None, tag: str = "job",
    plugin: Path = PLUGIN, keep_output: bool = False,
) -> JobRun:  # fmt: skip
    """Run one job in a fresh interpreter and return its report, wall time and peak RSS.

    The output (``<workdir>/<tag>.root``) is deleted unless ``keep_output``.
    """
    output, report, rss = (workdir / f"{tag}{ext}" for ext in (".root", ".json", ".rss"))
    # the site is left to the child's environment, as a batch job's would be
    site = {**os.environ, **(env or {})}.get("HEPSTREAM_SITE", "local")
    spec = JobSpec(str(plugin), tuple(inputs), str(output), report=str(report), site=site)
    cmd = [sys.executable, "-m", "hepstream", *spec.to_argv()]
    timed = os.path.exists(GNU_TIME)
    if timed:
        cmd = [GNU_TIME, "-f", "%M", "-o", str(rss), *cmd]
    began = time.perf_counter()
    done = subprocess.run(
        cmd, cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    process_s = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"hepstream run exited {done.returncode}: {done.stderr.strip()}")
    data = json.loads(report.read_text())
    peak = int(rss.read_text().split()[-1]) / 1024 if timed else data["peak_rss_mb"]
    if not keep_output:
        output.unlink(missing_ok=True)
    return JobRun(data, process_s, round(peak, 1), "GNU time" if timed else "job report")
