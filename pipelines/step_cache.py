"""Each step's cache key also covers the project code the step runs (radreport.source_digest):
ZenML keys a cached step by its own function's source only, so a change in the code it
calls would otherwise be a cache hit that returns what the old code made."""

from __future__ import annotations

from zenml.config import CachePolicy

from radreport.source_digest import source_files


def keyed_by_project_sources(step_module: str) -> CachePolicy:
    """The default policy (step code, parameters, inputs) plus the contents of every project
    file `step_module` imports, directly or not; pass the step module's `__name__`."""
    return CachePolicy(file_dependencies=[str(path) for path in source_files(step_module)])
