"""The native decode step (llama_decode_step.c), compiled for this machine at first use.

The kernel is built with the machine's C compiler (`$CC`, else `cc`) for the CPU it runs on
(`-march=native`: AVX-512 where the CPU has it) and cached under the radreport cache, keyed
by the source, the compiler and the CPU's feature flags, so a changed kernel, compiler or
host never loads a stale build. Compiling takes about a second.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from radreport.llm.bundled import cache_dir

SOURCE = Path(__file__).with_name("llama_decode_step.c")
FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC")
_LIBRARY_NAME = "libllama_decode_step.so"


class NativeDecoderUnavailable(RuntimeError):
    """The native decoder cannot run here: no kernel for this machine, or an unsupported model."""


class NativeKernelError(NativeDecoderUnavailable):
    """The native decode kernel could not be compiled or loaded on this machine."""


def compiler() -> str:
    name = os.environ.get("CC", "cc")
    path = shutil.which(name)
    if path is None:
        raise NativeKernelError(
            f"the native decoder compiles its kernel with a C compiler and {name!r} was not "
            "found: install gcc (or set CC), or use decoder 'torch' or 'onnxruntime'"
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


def build_key(cc: str) -> str:
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    digest = hashlib.sha256()
    for part in (SOURCE.read_bytes(), version.encode(), " ".join(FLAGS).encode()):
        digest.update(part)
    digest.update(_cpu_flags().encode())
    return digest.hexdigest()[:16]


def compile_kernel(target: Path, cc: str) -> None:
    """Compile the kernel into `target` (written whole or not at all)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        built = Path(scratch) / target.name
        result = subprocess.run(
            [cc, *FLAGS, str(SOURCE), "-o", str(built), "-lm"], capture_output=True, text=True
        )
        if result.returncode != 0:
            detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise NativeKernelError(f"compiling {SOURCE.name} with {cc} failed: {detail}")
        os.replace(built, target)


def build_dir() -> Path:
    """Where this machine's build of this source lives (its key names the CPU)."""
    return cache_dir() / "native" / build_key(compiler())


@functools.lru_cache(maxsize=1)
def load_kernel() -> ctypes.CDLL:
    """The compiled kernel, built first if this machine has no build of this source yet."""
    target = build_dir() / _LIBRARY_NAME
    if not target.is_file():
        compile_kernel(target, compiler())
    library = ctypes.CDLL(str(target))
    library.llama_decode_step.restype = ctypes.c_int
    return library
