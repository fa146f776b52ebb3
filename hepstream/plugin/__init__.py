"""The analyst's side of a job: the plugin API (:mod:`~hepstream.plugin.api`), the loader
that imports and compiles plugins (:mod:`~hepstream.plugin.loader`), the job's checked calls
into them (:mod:`~hepstream.plugin.calls`), and the gathering of the events they select
(:mod:`~hepstream.plugin.take`, compiled passes in :mod:`~hepstream.plugin.gather`)."""
