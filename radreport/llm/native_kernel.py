"""The native decode step (llama_decode_step.c), compiled for this machine at first use
(radreport.llm.c_build) and cached by its source, the compiler and the CPU."""

from __future__ import annotations

import contextlib
import ctypes
import functools
from collections.abc import Iterator
from pathlib import Path

from radreport.llm import c_build
from radreport.llm.decoder_support import DecoderUnavailable

SOURCE = Path(__file__).with_name("llama_decode_step.c")
FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC")
_LIBRARY_NAME = "libllama_decode_step.so"
_USER = "the native decoder"
DECODER_ADVICE = "or use decoder 'torch' or 'onnxruntime'"


class NativeDecoderUnavailable(DecoderUnavailable):
    """The native decoder cannot run here: no kernel for this machine, or an unsupported model."""


class NativeKernelError(NativeDecoderUnavailable):
    """The native decode kernel could not be compiled or loaded on this machine."""


@contextlib.contextmanager
def _as_decoder_error() -> Iterator[None]:
    """A kernel that cannot be built is the native decoder being unavailable here."""
    try:
        yield
    except c_build.KernelBuildError as error:
        raise NativeKernelError(str(error)) from error


def compiler() -> str:
    """The C compiler's path (NativeKernelError where there is none)."""
    with _as_decoder_error():
        return c_build.compiler(_USER, DECODER_ADVICE)


def build_key(cc: str) -> str:
    return c_build.build_key(cc, SOURCE, FLAGS)


def compile_kernel(target: Path, cc: str) -> None:
    """Compile the decode step into `target`, written whole or not at all."""
    with _as_decoder_error():
        c_build.compile_kernel(target, cc, SOURCE, FLAGS)


def build_dir() -> Path:
    """Where this machine's build of the decode step lives (its key names the CPU)."""
    return c_build.build_dir(compiler(), SOURCE, FLAGS)


@functools.lru_cache(maxsize=1)
def load_kernel() -> ctypes.CDLL:
    """The compiled decode kernel, built first if this machine has no build of this source yet."""
    with _as_decoder_error():
        library = c_build.load_library(SOURCE, FLAGS, _LIBRARY_NAME, _USER, DECODER_ADVICE)
    library.llama_decode_step.restype = ctypes.c_int
    return library
