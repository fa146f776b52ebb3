"""``python -m bench``: run the performance suites from a checkout (``make bench``).

The benchmarks' own command: the product (``hepstream``) never imports ``bench/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run the performance suites (kernels, streaming, jobs, memory, latency, "
        "storage); write bench/results/latest.json and latest.md and print the targets.",
        epilog="example: python -m bench --quick -k storage --results-dir /tmp/bench",
    )
    parser.add_argument("--quick", action="store_true", help="small samples, 1-2 rounds")
    parser.add_argument("-k", dest="keyword", help="only benchmarks matching this -k expression")
    parser.add_argument("--results-dir", type=Path, help="default: bench/results")
    parser.add_argument("--data-dir", type=Path, help="cache of generated samples")
    args = parser.parse_args(argv)
    from bench.runner import RESULTS_DIR, run_bench

    return run_bench(
        quick=args.quick, keyword=args.keyword,
        results_dir=args.results_dir or RESULTS_DIR, data_dir=args.data_dir,
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
