"""Engines behind one interface (:class:`~hepstream.dataset.engines.base.Engine`)."""

from hepstream.dataset.engines.base import Engine, Outcome, Progress, QuietProgress

NAMES = ("local", "slurm", "dask", "condor")

__all__ = ["NAMES", "Engine", "Outcome", "Progress", "QuietProgress"]
