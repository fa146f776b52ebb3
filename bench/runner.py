"""Run the benchmark suites under pytest-benchmark, then write and print the Markdown report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.settings import DATA_ENV, MODE_ENV

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
#: Where ``latest.json`` and ``latest.md`` go unless told otherwise (gitignored).
RESULTS_DIR = BENCH_DIR / "results"


def pytest_command(json_path: Path, keyword: str | None = None) -> list[str]:
    """The pytest invocation: the bench suites only, benchmarks on, JSON out."""
    cmd = [sys.executable, "-m", "pytest", str(BENCH_DIR), "-p", "no:cacheprovider", "-q"]
    cmd += ["--benchmark-enable", f"--benchmark-json={json_path}", "--benchmark-sort=name"]
    cmd += ["-o", "log_cli=false"]
    if keyword:
        cmd += ["-k", keyword]
    return cmd


def run_bench(
    *, quick: bool = False, keyword: str | None = None, results_dir: Path = RESULTS_DIR,
    data_dir: Path | None = None, echo: bool = True,
) -> int:  # fmt: skip
    """Run the suites; write ``latest.json`` and ``latest.md`` in ``results_dir``; pytest's code.

    Both files are written under temporary names and renamed, so a failed run never leaves
    a half-written report; the Markdown covers whatever suites produced results.
    """
    from bench.render import render

    results_dir.mkdir(parents=True, exist_ok=True)
    tmp_json = results_dir / f".latest.{os.getpid()}.json"
    env = {**os.environ, MODE_ENV: "quick" if quick else "full"}
    if data_dir is not None:
        env[DATA_ENV] = str(data_dir)
    code = subprocess.run(pytest_command(tmp_json, keyword), cwd=REPO, env=env, check=False)
    if not tmp_json.exists():
        print(f"bench: pytest exited {code.returncode} before writing results", file=sys.stderr)
        return code.returncode or 1
    doc = json.loads(tmp_json.read_text())
    text = render(doc, mode="quick" if quick else "full")
    tmp_md = results_dir / f".latest.{os.getpid()}.md"
    tmp_md.write_text(text)
    os.replace(tmp_json, results_dir / "latest.json")
    os.replace(tmp_md, results_dir / "latest.md")
    if echo:
        print(text)
        print(f"results: {results_dir / 'latest.md'} and latest.json")
    return code.returncode
