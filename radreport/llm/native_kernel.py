"""Our C kernels, compiled for this machine at first use: the native decode step
(llama_decode_step.c) and, through `load_library`, the training kernels (training_kernels.c).

A kernel is built with the machine's C compiler (`$CC`, else `cc`) for the CPU it runs on
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
from pathlib import Path

from radreport.llm.bundled import cache_dir
from radreport.whole_file_writes import replaced_whole

SOURCE = Path(__file__).with_name("llama_decode_step.c")
FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC")
_LIBRARY_NAME = "libllama_decode_step.so"


class NativeDecoderUnavailable(RuntimeError):
    """The native decoder cannot run here: no kernel for this machine, or an unsupported model."""


class NativeKernelError(NativeDecoderUnavailable):
    """The native decode kernel could not be compiled or loaded on this machine."""


DECODER_ADVICE = "or use decoder 'torch' or 'onnxruntime'"


def compiler(user: str = "the native decoder", advice: str = DECODER_ADVICE) -> str:
    """The C compiler's path; the error names who needed it and what else they can do."""
    name = os.environ.get("CC", "cc")
    path = shutil.which(name)
    if path is None:
        raise NativeKernelError(
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


def build_key(cc: str, source: Path | None = None, flags: tuple[str, ...] | None = None) -> str:
    source, flags = source or SOURCE, flags or FLAGS
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    digest = hashlib.sha256()
    for part in (source.read_bytes(), version.encode(), " ".join(flags).encode()):
        digest.update(part)
    digest.update(_cpu_flags().encode())
    return digest.hexdigest()[:16]


def compile_kernel(
    target: Path, cc: str, source: Path | None = None, flags: tuple[str, ...] | None = None
) -> None:
    """Compile `source` (default: the decode step) into `target`, written whole or not at all."""
    source, flags = source or SOURCE, flags or FLAGS
    with replaced_whole(target) as built:
        result = subprocess.run(
            [cc, *flags, str(source), "-o", str(built), "-lm"], capture_output=True, text=True
        )
        if result.returncode != 0:
            detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise NativeKernelError(f"compiling {source.name} with {cc} failed: {detail}")


def _build_dir(cc: str, source: Path, flags: tuple[str, ...]) -> Path:
    return cache_dir() / "native" / build_key(cc, source, flags)


def build_dir() -> Path:
    """Where this machine's build of the decode step lives (its key names the CPU)."""
    return _build_dir(compiler(), SOURCE, FLAGS)


def load_library(
    source: Path, flags: tuple[str, ...], name: str, user: str, advice: str
) -> ctypes.CDLL:
    """`source` compiled for this machine, built first if the cache has no build of it yet.

    `user` and `advice` word the error where no compiler is found.
    """
    cc = compiler(user, advice)
    target = _build_dir(cc, source, flags) / name
    if not target.is_file():
        compile_kernel(target, cc, source, flags)
    return ctypes.CDLL(str(target))


@functools.lru_cache(maxsize=1)
def load_kernel() -> ctypes.CDLL:
    """The compiled decode kernel, built first if this machine has no build of this source yet."""
    library = load_library(SOURCE, FLAGS, _LIBRARY_NAME, "the native decoder", DECODER_ADVICE)
    library.llama_decode_step.restype = ctypes.c_int
    return library
