"""Benchmark suites for hepstream's performance targets (issue 4) and the runner that reports them.

``python -m bench`` runs every suite with pytest-benchmark and writes ``bench/results/latest.md``.
"""
