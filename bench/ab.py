"""``python -m bench.ab``: this checkout against another revision on the layout matrix, in
one run.

Both sides run the same ``hepstream run`` jobs over the same cached layout files, round
after round, the two sides alternating (which goes first alternates too), so a machine that
slows down or speeds up during the run weighs on both alike. The other revision is checked
out in a temporary ``git worktree`` and put first on ``PYTHONPATH``; nothing is installed.
Each job lists a layout's file ``--copies`` times, for jobs long enough to be steady.

    python -m bench.ab --base HEAD~3            # the five layouts, full-size files
    python -m bench.ab --base v1 --quick -l tau1n

Prints, per layout, each side's median events/s and the ratio this checkout / base.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.layouts import LAYOUTS, ensure
from bench.settings import BenchSettings

REPO = Path(__file__).resolve().parent.parent


def _job(root: Path, plugin: Path, files: list[Path], out: Path) -> float:
    """One ``hepstream run`` with the package of ``root``; its events/s."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-m", "hepstream", "run", str(plugin), *map(str, files)]
    cmd += ["-o", str(out), "--no-progress", "--json"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench.ab: a job of {root} failed:\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    return float(report["events_read"]) / float(report["wall_s"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ab", description=__doc__.split("\n\n")[0],
        epilog="example: python -m bench.ab --base HEAD~1 --rounds 5 -l tau1n -l root-nanoaod",
    )  # fmt: skip
    parser.add_argument("--base", default="HEAD~1", help="the revision to compare with")
    parser.add_argument("-l", "--layout", action="append", choices=sorted(LAYOUTS))
    parser.add_argument("--rounds", type=int, default=5, help="jobs per side and layout")
    parser.add_argument("--copies", type=int, default=4, help="times each job lists the file")
    parser.add_argument("--quick", action="store_true", help="the quick bench's small files")
    args = parser.parse_args(argv)
    settings = BenchSettings()
    names = args.layout or list(LAYOUTS)
    with tempfile.TemporaryDirectory(prefix="hepstream-ab-") as tmp:
        base = Path(tmp) / "base"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(base), args.base],
            check=True,
        )  # fmt: skip
        try:
            print(f"{'layout':22} {'base ev/s':>12} {'this ev/s':>12} {'this/base':>9}")
            for name in names:
                layout = LAYOUTS[name]
                events = layout.quick_events if args.quick else layout.full_events
                files = [ensure(name, events, settings.seed)] * args.copies
                sides = {"base": base, "this": REPO}
                rates: dict[str, list[float]] = {side: [] for side in sides}
                for side, root in sides.items():  # warm-up: numba's caches of each side
                    _job(root, layout.plugin, files[:1], Path(tmp) / f"warm-{side}.root")
                for k in range(args.rounds):
                    order = list(sides) if k % 2 == 0 else list(reversed(sides))
                    for side in order:
                        out = Path(tmp) / f"{side}.root"
                        rates[side].append(_job(sides[side], layout.plugin, files, out))
                a, b = (statistics.median(rates[s]) for s in ("base", "this"))
                print(f"{name:22} {a:12,.0f} {b:12,.0f} {b / a:9.3f}", flush=True)
        finally:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)],
                check=False,
            )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
