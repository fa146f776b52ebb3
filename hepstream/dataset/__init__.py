"""A dataset as many jobs: split, submit to an engine, collect.

``split`` (pure) turns inputs into :class:`~hepstream.jobspec.JobSpec` records,
``record`` keeps them in the dataset directory, ``engines`` run them (local processes,
Slurm, Dask, HTCondor), ``collect`` merges their reports and outputs.
"""
