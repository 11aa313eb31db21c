"""Each step's cache key also covers the project code the step runs (radreport.source_digest):
ZenML keys a cached step by its own function's source only, so a change in the code it
calls would otherwise be a cache hit that returns what the old code made."""

from __future__ import annotations

from zenml.config import CachePolicy

from radreport.source_digest import source_files

# This module is imported by every step for its decorator, not run by it.
_KEYING = ("pipelines.step_cache",)


def keyed_by_project_sources(step_module: str) -> CachePolicy:
    """The default policy (step code, parameters, inputs) plus the contents of every project
    file `step_module` imports, directly or not; pass the step module's `__name__`."""
    files = source_files(step_module, leaving_out=_KEYING)
    return CachePolicy(file_dependencies=[str(path) for path in files])
