"""Helpers of the tests that drive a real ``hepstream`` command or process: waiting until
its job is really under way (its plugin dropped a marker file on its first chunk), and
the one error line a failure must give."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest


def wait_for_marker(proc: subprocess.Popen, marker: Path, timeout: float) -> None:
    """Return once ``marker`` exists; fail the test (the process killed, its stderr shown)
    if ``proc`` exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"job never reached its first chunk: {proc.communicate()[1]}")
        time.sleep(0.02)


def finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str]:
    """Wait for ``proc`` to exit (at most ``timeout`` seconds, then it is killed and reaped);
    its exit code and stderr."""
    try:
        _, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err


def one_error_line(code: int, err: str, expected: int, *names: str) -> str:
    """``err`` (a command's stderr) is one ``hepstream: error:`` line naming ``names`` and
    no traceback, and the command exited ``expected``; returns the line."""
    assert code == expected, (code, err[-2000:])
    assert "Traceback" not in err
    assert "internal error" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hepstream: error: "), lines[0]
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def run_cli(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``hepstream ARGS`` as a user runs it: its own process, its exit code and both streams."""
    import sys

    return subprocess.run(
        [sys.executable, "-m", "hepstream", *args], capture_output=True, text=True, timeout=timeout
    )
