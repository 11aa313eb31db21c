"""Compiling our C kernels for this machine at first use, for any of them: the native decode
step (radreport.llm.native_kernel) and the training kernels (radreport.llm.training_kernels).

A kernel is built with the machine's C compiler (`$CC`, else `cc`) for the CPU it runs on
(`-march=native`: AVX-512 where the CPU has it) and cached under the radreport cache, keyed
by the source, the compiler, the flags and the CPU's feature flags, so a changed kernel,
compiler or host never loads a stale build. Compiling takes about a second.

This module names no kernel source: each kernel's module does. So code that builds one
kernel does not depend, for the project's cache keys (radreport.source_digest), on the
others' sources.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
from pathlib import Path

from radreport.llm.bundled import cache_dir
from radreport.whole_file_writes import replaced_whole


class KernelBuildError(RuntimeError):
    """A C kernel could not be compiled or loaded on this machine."""


def compiler(user: str, advice: str) -> str:
    """The C compiler's path; the error names who needed it and what else they can do."""
    name = os.environ.get("CC", "cc")
    path = shutil.which(name)
    if path is None:
        raise KernelBuildError(
            f"{user} compiles its kernel with a C compiler and {name!r} was not "
            f"found: install gcc (or set CC), {advice}"
        )
    return path


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build_key(cc: str, source: Path, flags: tuple[str, ...]) -> str:
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    digest = hashlib.sha256()
    for part in (source.read_bytes(), version.encode(), " ".join(flags).encode()):
        digest.update(part)
    digest.update(_cpu_flags().encode())
    return digest.hexdigest()[:16]


def build_dir(cc: str, source: Path, flags: tuple[str, ...]) -> Path:
    """Where this machine's build of `source` lives (its key names the CPU)."""
    return cache_dir() / "native" / build_key(cc, source, flags)


def compile_kernel(target: Path, cc: str, source: Path, flags: tuple[str, ...]) -> None:
    """Compile `source` into `target`, written whole or not at all."""
    with replaced_whole(target) as built:
        result = subprocess.run(
            [cc, *flags, str(source), "-o", str(built), "-lm"], capture_output=True, text=True
        )
        if result.returncode != 0:
            detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise KernelBuildError(f"compiling {source.name} with {cc} failed: {detail}")


def load_library(
    source: Path, flags: tuple[str, ...], name: str, user: str, advice: str
) -> ctypes.CDLL:
    """`source` compiled for this machine, built first if the cache has no build of it yet.

    `user` and `advice` word the error where no compiler is found.
    """
    cc = compiler(user, advice)
    target = build_dir(cc, source, flags) / name
    if not target.is_file():
        compile_kernel(target, cc, source, flags)
    return ctypes.CDLL(str(target))
