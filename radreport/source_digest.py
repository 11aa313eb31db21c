"""The project's own source files that a module's behaviour depends on, and their digest.

A cached result is only as current as the code that made it. ZenML keys a cached step by its
own function's code, not by the code that function calls, and a fine-tuning run resumes from
checkpoints keyed by its config and data: after a change to `radreport/` (a bug fixed, a
release installed) both would hand back results the old code made, without a word. Keying
them also by these files makes a changed dependency a miss, and leaves the results of steps
whose code did not change where they are (a fix in the metrics does not ingest the DICOM
studies again).

The dependencies are found by reading the import statements of the project's modules,
those inside functions too (the project imports heavy libraries lazily), without importing
anything; third-party modules are left out (their versions are pinned). The C source a
module names beside it counts too (the native kernels are compiled from them at run time),
and so does a module named in a string (imported by name). A package's `__init__.py` counts
wherever a module below it is imported, as it runs then, but what it imports is followed
only where the package itself is imported from: `radreport.metrics` re-exports the whole
evaluation for users, and a module that needs one of its functions does not depend on its
plots. What is imported but never called still counts: the keys err towards a miss.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The top-level packages of this project; every other import is a library's.
PROJECT_PACKAGES = ("radreport", "steps", "pipelines", "materializers")
# Files other than Python that modules read as code, found where a module names them.
_CODE_SUFFIXES = (".c",)


def module_file(name: str) -> Path | None:
    """The project's file of module `name`, or None for a library's (or an attribute)."""
    parts = name.split(".")
    if parts[0] not in PROJECT_PACKAGES or not all(part.isidentifier() for part in parts):
        return None
    base = PROJECT_ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def _references(path: Path) -> tuple[tuple[str, ...], tuple[Path, ...]]:
    """What the file uses: the modules its import statements load, and the code files
    beside it that it names in a string ("llama_decode_step.c"). A module is "a.b" for
    `import a.b`; for `from a.b import c`, "a.b.c" where c is a module of the project, else
    "a.b" (c is its attribute). A string that is exactly the name of a project module counts
    too: it is imported by name (`importlib.import_module`, as the training backends are)."""
    modules: list[str] = []
    companions: list[Path] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if "." in node.value and module_file(node.value):
                modules.append(node.value)
            elif node.value.endswith(_CODE_SUFFIXES) and (path.parent / node.value).is_file():
                companions.append(path.parent / node.value)
        elif isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                modules.append(submodule if module_file(submodule) else node.module)
    return tuple(modules), tuple(companions)


def _packages_above(name: str) -> list[str]:
    """The packages whose __init__ runs before module `name` is imported."""
    parts = name.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


@functools.cache
def source_files(module: str, leaving_out: tuple[str, ...] = ()) -> tuple[Path, ...]:
    """The project files `module` depends on, itself included, sorted; the modules named in
    `leaving_out` are neither counted nor followed. ValueError when `module` is not one of
    the project's."""
    if module_file(module) is None:
        raise ValueError(f"{module} is not a module of this project ({PROJECT_ROOT})")
    found: set[Path] = set()  # the modules used, whose imports are followed
    above: set[Path] = set()  # packages' __init__ files that run on the way to them
    pending = [module]
    while pending:
        name = pending.pop()
        path = module_file(name)
        if path is None or path in found or name in leaving_out:
            continue
        found.add(path)
        above.update(filter(None, map(module_file, _packages_above(name))))
        pending += _references(path)[0]
    code = {companion for path in found for companion in _references(path)[1]}
    return tuple(sorted(found | above | code))


def source_digest(module: str, leaving_out: tuple[str, ...] = ()) -> str:
    """SHA-256 over the paths (relative to the project) and contents of source_files."""
    digest = hashlib.sha256()
    for path in source_files(module, leaving_out):
        digest.update(path.relative_to(PROJECT_ROOT).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()
