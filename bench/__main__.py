"""``python -m bench``: run the suites, write bench/results/latest.{json,md}, print targets.

``hepstream bench run`` (and ``make bench``) run this; the benchmarks sit on top of the
product and import it, never the other way round.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.runner import RESULTS_DIR, run_bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small samples, 1-2 rounds (CI)")
    parser.add_argument("-k", dest="keyword", help="only benchmarks matching this -k expression")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    return run_bench(
        quick=args.quick, keyword=args.keyword, results_dir=args.results_dir,
        data_dir=args.data_dir,
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
