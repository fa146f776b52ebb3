"""The analyst's side of a job: the selection plugin API and the loader that imports and
compiles plugins."""
