"""``python -m bench``: run the benchmark suites and print the results table."""

from bench.runner import main

main()
