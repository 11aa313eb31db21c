"""Turns the "auto" values of LLMSettings into concrete choices for the machine at hand.

On CUDA: the talk's setup (unsloth, 4-bit base, gradient checkpointing, bf16 where the GPU
has it). On CPU: what benchmarks/train_throughput.py measured fastest
(benchmarks/results/train_throughput.md): an unquantized base (bitsandbytes dequantizes
NF4 weights on every CPU matmul: x2.5 slower), no recomputation (x1.33), bf16 only where
the CPU has it natively (emulated bf16 was x30 slower; on AMX, bf16 trains 1.65-2x faster
than fp32: benchmarks/results/train_throughput_amx*.md), the hf backend, and attention
that takes a lean eager kernel for short batches. Recomputation is turned on there too
where the longest batch's activations would not fit (radreport.llm.training_memory), and
always with unsloth, whose recomputation took no longer on the CPU (BENCHMARKS.md, "CPU
training memory by model shape").
"""

from __future__ import annotations

from pathlib import Path

import torch

from radreport.llm.settings import LLMSettings
from radreport.llm.training_memory import cpu_batches_need_checkpointing

# On CPU, a lean eager kernel for short batches and SDPA for long ones, chosen per batch
# (radreport/llm/grouped_attention.py); on CUDA, SDPA's fused kernels. The name is spelled
# here rather than imported: grouped_attention imports transformers, and finetune imports
# this module before unsloth has patched transformers.
CPU_ATTENTION = "grouped_eager_or_sdpa"
# unsloth and hf tie on CPU in tokens/s (both are stock transformers + PEFT there); hf scores
# only the labelled positions, and keeps unsloth's process-wide patches out of CPU pipelines.
CPU_FASTEST_BACKEND = "hf"
# oneDNN, behind PyTorch's bf16 and fp32 products on CPU, generates a kernel for every new
# product shape (3-55 ms each); with every batch a new length, 31 shapes per step cost 125-166
# ms of a 1.2 s step (BENCHMARKS.md, "Twentieth session"). Lengths rounded up to 16 leave 16
# lengths up to 256 tokens, each generated once per process, for about 6 % more padding.
# Over 40 steps 16 trained 3-5 % faster than 32 (less padding); over 24, 8 was no faster
# than not rounding at all.
CPU_PAD_TO_MULTIPLE_OF = 16
_CPU_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


def cuda_available() -> bool:
    return torch.cuda.is_available()


def cpu_has_bf16() -> bool:
    """Native bf16 matmul support (AVX-512 BF16 or AMX); without it bf16 on CPU is emulated."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return False
    flags = set(cpuinfo.read_text().split())
    return bool(flags & _CPU_BF16_FLAGS)


def _compute_dtype(requested: str, on_cuda: bool) -> str:
    if requested != "auto":
        return requested
    if on_cuda:
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "bfloat16" if cpu_has_bf16() else "float32"


def _attention(requested: str, on_cuda: bool) -> str:
    if requested != "auto":
        return requested
    return "sdpa" if on_cuda else CPU_ATTENTION


def _pad_to_multiple_of(requested: int | str, on_cuda: bool) -> int:
    if requested != "auto":
        return requested
    return 1 if on_cuda else CPU_PAD_TO_MULTIPLE_OF


def resolve_backend(settings: LLMSettings) -> str:
    """The training backend for this machine; imports nothing, so it may run before
    unsloth has patched transformers."""
    if settings.backend != "auto":
        return settings.backend
    return "unsloth" if cuda_available() else CPU_FASTEST_BACKEND


# The settings resolve_for_device decides where the config says "auto".
DEVICE_RESOLVED_SETTINGS = (
    "backend",
    "load_in_4bit",
    "gradient_checkpointing",
    "compute_dtype",
    "attention",
    "pad_to_multiple_of",
)


def device_decisions(resolved: LLMSettings) -> dict[str, object]:
    """What resolve_for_device decided for `resolved` (its result), and the device: the
    record that tells apart two runs of one config on different machines."""
    decisions = {key: getattr(resolved, key) for key in DEVICE_RESOLVED_SETTINGS}
    return decisions | {"device": "cuda" if cuda_available() else "cpu"}


def resolve_for_device(settings: LLMSettings) -> LLMSettings:
    """A copy of `settings` with no "auto" left: backend, dtype, 4-bit, checkpointing,
    attention, padding multiple."""
    on_cuda = cuda_available()
    load_in_4bit = settings.load_in_4bit
    if load_in_4bit == "auto":
        load_in_4bit = on_cuda
    compute_dtype = _compute_dtype(settings.compute_dtype, on_cuda)
    attention = _attention(settings.attention, on_cuda)
    backend = resolve_backend(settings)
    checkpointing = settings.gradient_checkpointing
    if checkpointing == "auto":
        # Recomputation buys memory a GPU needs for long reports. On the CPU the hf backend's
        # costs time (above), so only batches too long for the memory get it; unsloth's cost
        # none there (8 rows of 512 and of 1,536 tokens: 28 s and 115 s against 28 s and
        # 125 s, half the memory or less), and its own CPU path keeps about twice what
        # training_memory counts for the hf backend's kernels.
        checkpointing = (
            on_cuda
            or backend == "unsloth"
            or cpu_batches_need_checkpointing(settings, compute_dtype, attention)
        )
    return settings.model_copy(
        update={
            "backend": backend,
            "load_in_4bit": load_in_4bit,
            "gradient_checkpointing": checkpointing,
            "compute_dtype": compute_dtype,
            "attention": attention,
            "pad_to_multiple_of": _pad_to_multiple_of(settings.pad_to_multiple_of, on_cuda),
        }
    )
