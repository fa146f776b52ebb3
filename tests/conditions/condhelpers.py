"""Constants and small helpers shared by the conditions tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import uproot

from hepstream.conditions.job import METADATA_KEY

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CALIB_PLUGIN = EXAMPLES / "tau1n_calib.py"
#: 12 000 events, 3 000 per run (runs 10000-10003), 1 000 per sub-run, 2 000 per cluster:
#: the cluster [2000, 4000) straddles the run boundary at event 3000.
N_EVENTS, PER_RUN, PER_SUBRUN, PER_BASKET = 12_000, 3_000, 1_000, 2_000
RUNS = (10_000, 10_001, 10_002, 10_003)


def server_gets(log: Path) -> list[str]:
    """Paths of the GETs the central server answered with 200."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        method, path, status = line.split()
        if method == "GET" and status == "200" and path != "/":
            out.append(path)
    return out


#: Keeps every event, writes the payload value each event was handed; with ``gate`` set,
#: its first select() creates ``gate.started`` and waits (at most 60 s) for ``gate.go``.
PROBE = """
import os
import time

import numpy as np

import hepstream

GATE = {gate!r}


class Probe(hepstream.Selection):
    branches = ["run", "subrun", "event"]
    conditions = ["beam"]
    run_branch = "run"
    subrun_branch = {subrun!r}
    calls = 0

    def select(self, events):
        self.calls += 1
        if GATE and self.calls == 1:
            open(GATE + ".started", "w").close()
            deadline = time.monotonic() + 60
            while not os.path.exists(GATE + ".go") and time.monotonic() < deadline:
                time.sleep(0.02)
        return np.ones(len(events), dtype=bool)

    def output(self, events):
        scale = float(self.payload("beam")["ebeam_scale"])
        return {{"event": events.event, "run": events.run,
                 "scale": np.full(len(events), scale)}}
"""


def write_probe(directory: Path, subrun: str | None = None, gate: str | None = None) -> Path:
    path = directory / f"probe_{subrun}_{'gated' if gate else 'free'}.py"
    path.write_text(PROBE.format(subrun=subrun, gate=gate))
    return path


#: Job-side client code as a process: wait for GO (at most 60 s), then load the global tag
#: and every payload it lists through the HTTP source; print ``{sha: size}`` as JSON.
FETCHER = """
import json, os, sys, time
from hepstream.conditions.client import Chain, HTTPSource
url, name, cache, go = sys.argv[1:5]
deadline = time.monotonic() + 60
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.01)
chain = Chain([HTTPSource(url, cache)])
gt = chain.global_tag(name)
print(json.dumps({sha: len(chain.load(p)) for sha, p in gt.payloads.items()}))
chain.close()
"""


def read_output(path: Path) -> dict:
    """Columns and the conditions metadata of a job's ROOT output."""

    with uproot.open(path) as f:
        columns = f["events"].arrays(library="np")
        return {
            "columns": {k: columns[k].tolist() for k in columns},
            "meta": str(f[METADATA_KEY]),
        }


def run_fetchers(
    n: int, url: str, caches: list[Path], tmp_path: Path, **env_extra: str
) -> list[dict]:
    """``n`` FETCHER processes released together; job ``i`` uses ``caches[i % len]``."""
    script, go = tmp_path / "fetch.py", tmp_path / "go"
    script.write_text(FETCHER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), **env_extra)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), url, "beam-v1", str(caches[i % len(caches)]), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(n)
    ]
    time.sleep(0.5)
    go.touch()  # all released together: the downloads overlap
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            results.append(json.loads(out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    return results
