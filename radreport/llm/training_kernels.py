"""The compiled training kernels (training_kernels.c): fused RMSNorm, SwiGLU and the LM head's
cross-entropy on CPU tensors.

Built by radreport.llm.c_build, as the native decoder's kernel is: with the machine's C
compiler at first use, cached by source, compiler and CPU. Where no build is possible the
callers keep transformers' own modules, so training never depends on a C compiler; the
reason is logged once.
"""

from __future__ import annotations

import ctypes
import functools
import logging
from pathlib import Path

import torch

from radreport.llm.c_build import KernelBuildError, load_library

SOURCE = Path(__file__).with_name("training_kernels.c")
FLAGS = ("-O3", "-march=native", "-mprefer-vector-width=512", "-fopenmp", "-shared", "-fPIC")
_LIBRARY_NAME = "libtraining_kernels.so"
# The kernels' element types, by the suffix of their C names.
SUFFIXES = {torch.bfloat16: "bf16", torch.float32: "f32"}

logger = logging.getLogger(__name__)

_P, _N, _T = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
_SIGNATURES = {
    "rms_norm_forward": [_P, _P, _P, _P, _N, _N, ctypes.c_float, _T],
    "rms_norm_backward": [_P, _P, _P, _P, _P, _N, _N, _T],
    "swiglu_forward": [_P, _P, _P, _N, _T],
    "swiglu_backward": [_P, _P, _P, _P, _P, _N, _T],
    "cross_entropy_rows": [_P, _P, _P, _P, _N, _N, _T],
}


@functools.lru_cache(maxsize=1)
def load_training_kernels() -> ctypes.CDLL | None:
    """The compiled kernels, or None (logged once) where this machine cannot build them."""
    try:
        library = load_library(
            SOURCE,
            FLAGS,
            _LIBRARY_NAME,
            "fused RMSNorm, SwiGLU and head loss (llm.fused_elementwise)",
            "or set llm.fused_elementwise: false to silence this",
        )
    except (KernelBuildError, OSError) as error:
        logger.warning("PyTorch's RMSNorm, MLP and head loss run instead: %s", error)
        return None
    for name, arguments in _SIGNATURES.items():
        for suffix in SUFFIXES.values():
            function = getattr(library, f"{name}_{suffix}")
            function.argtypes = arguments
            function.restype = None
    return library


def kernel(name: str, dtype: torch.dtype):
    """The C function `name` for tensors of `dtype`; the caller has checked both exist."""
    return getattr(load_training_kernels(), f"{name}_{SUFFIXES[dtype]}")


def runs_on(*tensors: torch.Tensor) -> bool:
    """Whether the kernels can take these tensors: CPU, one supported dtype, a build here."""
    dtype = tensors[0].dtype
    return (
        dtype in SUFFIXES
        and all(t.device.type == "cpu" and t.dtype == dtype for t in tensors)
        and load_training_kernels() is not None
    )
