"""Decode speed of the bundled SmolLM2-135M-Instruct on this machine's CPU.

Prints and writes to benchmarks/results/generation.md:
- batch-1 tokens/s for each lever (decoding loop, dtype, threads, grad mode) and its fraction
  of the physical limit: decoding one token reads every weight once, so
  limit = memory bandwidth / weight bytes; the bandwidth is a large tensor copy, counted as
  bytes read + bytes written, measured right before each timed trial (the machine is shared,
  so both change together);
- tokens/s of batched greedy decoding with the KV cache, batch 16 vs batch 1 (ratio).

Every trial decodes a fixed number of tokens (stop tokens ignored), so trials compare equal
work. Batch-1 speed counts the decode steps only: the time to decode 1 token (the prompt's
prefill and the first token) is measured in the same trial and taken off.
Run: nice .venv/bin/python benchmarks/generation_speed.py

`--ctranslate2` adds CTranslate2's C++ generator on the same weights (converted from the same
folder): a reference for what a decoder without Python between its kernels reaches on this
CPU. It is not a project dependency: `pip install ctranslate2==4.8.5` first.
`--openvino` adds OpenVINO's CPU plugin, decoding our own ONNX Runtime GenAI export and
running the same matrix-vector products alone; also not a project dependency: `pip install
openvino==2026.4.1` first.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from radreport.data.alpaca import format_prompt
from radreport.llm.bundled import bundled_model_dir
from radreport.llm.decode_rules import DecodeRules
from radreport.llm.generate import greedy_decode, load_generation_model

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "iu_xray" / "val.csv"
DEFAULT_OUTPUT = REPO_ROOT / "benchmarks" / "results" / "generation.md"
NOTES_HEADING = "## Notes"
BANDWIDTH_BYTES = 256 * 1024**2  # far larger than any CPU cache: the copy streams from DRAM


@dataclass
class Arguments:
    data: Path = DEFAULT_DATA
    new_tokens: int = 32
    batch_size: int = 16
    trials: int = 3
    compile: bool = False  # adds the torch.compile lever: minutes of compilation on 2 cores
    ctranslate2: bool = False  # adds CTranslate2 levers (needs the ctranslate2 package)
    openvino: bool = False  # adds OpenVINO levers (needs the openvino package)
    # Comma-separated name fragments: only the levers whose name contains one of them run
    # (quick checks; the batching table always runs). Empty: every lever.
    only: str = ""
    output: Path = DEFAULT_OUTPUT


@dataclass
class Lever:
    name: str
    # "lean": greedy_decode; "generate": transformers' model.generate; "compiled": generate
    # with a static KV cache and the forward pass compiled by torch.compile; "matmuls": no
    # decoder at all, only the model's matrix-vector products (the floor of any eager
    # decoder with these kernels: what the limit leaves to every other op); "ctranslate2":
    # CTranslate2's generator, weights stored as `quantization`; "onnxruntime": our
    # ONNX Runtime GenAI decoder (LLMSettings.decoder "onnxruntime"), fp32 export;
    # "ort_matmuls": the "matmuls" work on ONNX Runtime's kernels; "openvino": that export
    # decoded by OpenVINO; "ov_matmuls": the "matmuls" work on OpenVINO's kernels; "native":
    # our C decode step (LLMSettings.decoder "native")
    loop: str
    dtype: torch.dtype
    threads: int
    inference_mode: bool = True
    quantization: str = "float32"
    # "native" only: how far ahead a step prefetches its weights; None: the distance the
    # decoder measures and remembers on this machine (what users get)
    prefetch_bytes: int | None = None


@dataclass
class Measurement:
    """Tokens/s over trials. The CPU is shared, so the best trial estimates what the machine
    does undisturbed and the median shows the disturbance."""

    best_tokens_per_s: float
    median_tokens_per_s: float
    best_bandwidth: float  # bytes/s, best copy measured between this lever's trials
    best_read_bandwidth: float  # bytes/s, best read-only stream between the same trials
    # CPU time this process spent per token (all its threads): unlike wall time it barely
    # grows when other jobs take the CPU, so levers compare fairly on a busy machine.
    cpu_ms_per_token: float

    def fraction_of_limit(self, bytes_per_token: int) -> float:
        return self.best_tokens_per_s / (self.best_bandwidth / bytes_per_token)

    def fraction_of_read_limit(self, bytes_per_token: int) -> float:
        return self.best_tokens_per_s / (self.best_read_bandwidth / bytes_per_token)


def parse_arguments() -> Arguments:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Arguments()
    for name, value in vars(defaults).items():
        flag = f"--{name.replace('_', '-')}"
        if isinstance(value, bool):
            parser.add_argument(flag, action="store_true")
        else:
            parser.add_argument(flag, type=type(value), default=value)
    return Arguments(**vars(parser.parse_args()))


def copy_bandwidth() -> float:
    """Bytes per second of a large tensor copy, read + write counted (best of 3)."""
    source = torch.ones(BANDWIDTH_BYTES // 4)
    target = torch.empty_like(source)
    best = min(_seconds(lambda: target.copy_(source)) for _ in range(3))
    return 2 * BANDWIDTH_BYTES / best


def read_bandwidth() -> float:
    """Bytes per second of summing a large tensor (reads only; best of 3): the streaming rate
    a decode step's weight reads could reach at most, shown beside the copy-based limit."""
    source = torch.ones(BANDWIDTH_BYTES // 4)
    best = min(_seconds(source.sum) for _ in range(3))
    return BANDWIDTH_BYTES / best


def weight_bytes(model) -> int:
    """Bytes of distinct weights: a tied embedding / LM head counts once (read once)."""
    return sum(parameter.numel() * parameter.element_size() for parameter in model.parameters())


def _seconds(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def decoder(model, tokenizer, prompts: list[str], new_tokens: int, lever: Lever):
    """A no-argument callable that decodes `new_tokens` for every prompt, ignoring stops."""
    encoded = tokenizer(prompts, padding=True, return_tensors="pt")
    ids, mask, pad = encoded["input_ids"], encoded["attention_mask"], tokenizer.pad_token_id
    if lever.loop in ("generate", "compiled"):
        return lambda: model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=new_tokens,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=pad,
            **(_static_compiled() if lever.loop == "compiled" else {}),
        )
    if lever.loop == "matmuls":
        return _matmuls_only(model, new_tokens, len(prompts))
    if lever.inference_mode:
        return lambda: greedy_decode(model, ids, mask, new_tokens, DecodeRules([], pad))

    def under_no_grad():
        with torch.no_grad():
            return greedy_decode.__wrapped__(model, ids, mask, new_tokens, DecodeRules([], pad))

    return under_no_grad


def _matmuls_only(model, new_tokens: int, batch: int):
    """Every Linear of the model (the tied LM head included) applied to one activation row
    per prompt, `new_tokens` times: a decode step's weight reads with nothing else."""
    weights = [module.weight for module in model.modules() if isinstance(module, torch.nn.Linear)]
    inputs = {
        weight.shape[1]: torch.zeros(batch, weight.shape[1], dtype=weight.dtype)
        for weight in weights
    }

    @torch.inference_mode()
    def run():
        for _ in range(new_tokens):
            for weight in weights:
                torch.nn.functional.linear(inputs[weight.shape[1]], weight)

    return run


def _matmuls_graph(model) -> tuple[Path, dict[str, np.ndarray]]:
    """One ONNX graph of the model's matrix-vector products (every Linear, the tied LM head
    included, each a MatMul on its own input row), and zero inputs for it. The model's
    weights, transposed to ONNX's (in, out) layout."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = [module.weight for module in model.modules() if isinstance(module, torch.nn.Linear)]
    widths = sorted({weight.shape[1] for weight in weights})
    inputs = [helper.make_tensor_value_info(f"x{w}", TensorProto.FLOAT, [1, w]) for w in widths]
    nodes, outputs, initializers = [], [], []
    for index, weight in enumerate(weights):
        array = weight.detach().float().T.contiguous().numpy()
        initializers.append(numpy_helper.from_array(array, f"w{index}"))
        nodes.append(helper.make_node("MatMul", [f"x{array.shape[0]}", f"w{index}"], [f"y{index}"]))
        outputs.append(helper.make_tensor_value_info(f"y{index}", TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "matmuls", inputs, outputs, initializers)
    serialized = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    folder = Path(tempfile.mkdtemp(prefix="matmuls-"))
    onnx.save(serialized, folder / "matmuls.onnx", save_as_external_data=True)
    feeds = {f"x{w}": np.zeros((1, w), dtype=np.float32) for w in widths}
    return folder / "matmuls.onnx", feeds


def onnxruntime_matmuls_only(model, new_tokens: int, threads: int):
    """The same matrix-vector products as `_matmuls_only`, run by ONNX Runtime's CPU kernels
    (the onnxruntime decoder's own): its floor, as the PyTorch row is PyTorch's."""
    import onnxruntime

    path, feeds = _matmuls_graph(model)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(path), options)

    def run():
        for _ in range(new_tokens):
            session.run(None, feeds)

    return run


def _openvino_config(threads: int) -> dict:
    # f32 inference precision: on a CPU with native bf16 OpenVINO would otherwise compute in
    # bf16 and read half the bytes, which is a different model than the fp32 rows.
    return {
        "INFERENCE_PRECISION_HINT": "f32",
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
    }


def openvino_matmuls_only(model, new_tokens: int, threads: int):
    """The same graph of matrix-vector products on OpenVINO's CPU plugin."""
    import openvino

    path, feeds = _matmuls_graph(model)
    compiled = openvino.Core().compile_model(str(path), "CPU", _openvino_config(threads))
    request = compiled.create_infer_request()

    def run():
        for _ in range(new_tokens):
            request.infer(feeds)

    return run


def openvino_decoder(tokenizer, prompt: str, new_tokens: int, lever: Lever):
    """Greedy decoding of our fp32 ONNX Runtime GenAI export on OpenVINO's CPU plugin, which
    reads the export's contrib ops itself; the KV cache is made internal state (OpenVINO's
    stateful transformation), so a step passes one token in and gets logits out. Checked to
    write the same tokens as the onnxruntime decoder."""
    import openvino
    from openvino._offline_transformations import apply_make_stateful_transformation

    from radreport.llm.onnx_generate import load_onnx_model, onnx_greedy_decode

    export, weights = _bundled_export()
    core = openvino.Core()
    graph = core.read_model(str(export / "model.onnx"))
    caches = [port.get_any_name() for port in graph.inputs]
    caches = [name for name in caches if name.startswith("past_key_values.")]
    apply_make_stateful_transformation(
        graph, {name: name.replace("past_key_values.", "present.") for name in caches}
    )
    compiled = core.compile_model(graph, "CPU", _openvino_config(lever.threads))
    request = compiled.create_infer_request()
    # (batch, kv heads, 0 positions, head size): the state a new sequence starts from.
    shapes = json.loads((export / "genai_config.json").read_text())["model"]["decoder"]
    empty = np.zeros((1, shapes["num_key_value_heads"], 0, shapes["head_size"]), np.float32)
    prompt_ids = tokenizer(prompt)["input_ids"]

    def decode():
        request.reset_state()
        for state in request.query_state():
            state.state = openvino.Tensor(empty)
        tokens, step = [], np.array([prompt_ids], dtype=np.int64)
        for _ in range(new_tokens):
            length = len(prompt_ids) + len(tokens)
            logits = request.infer(
                {"input_ids": step, "attention_mask": np.ones((1, length), dtype=np.int64)}
            )["logits"]
            tokens.append(int(logits[0, -1].argmax()))
            step = np.array([[tokens[-1]]], dtype=np.int64)
        return tokens

    reference = onnx_greedy_decode(
        load_onnx_model(export, lever.threads),
        [prompt_ids],
        new_tokens,
        DecodeRules([], tokenizer.pad_token_id),
    )[0]
    # ONNX Runtime GenAI ends at the model's own end token; OpenVINO's loop does not.
    if decode()[: len(reference)] != reference:
        raise RuntimeError("the OpenVINO decoder wrote other tokens than the onnxruntime one")
    return decode, weights


def ctranslate2_decoder(tokenizer, prompt: str, new_tokens: int, lever: Lever):
    """CTranslate2's greedy generator on the bundled weights, and the bytes of its stored
    weights (model.bin: what one decode step reads, with int8 scales where quantised)."""
    import ctranslate2

    model_dir = _ctranslate2_model(lever.quantization)
    generator = ctranslate2.Generator(
        str(model_dir), device="cpu", intra_threads=lever.threads, inter_threads=1
    )
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(prompt)["input_ids"])

    def decode():
        # No end token, so every trial decodes exactly `new_tokens` after the prompt.
        return generator.generate_batch(
            [tokens],
            max_length=new_tokens,
            sampling_topk=1,
            end_token=[],
            include_prompt_in_result=False,
        )

    produced = len(decode()[0].sequences_ids[0])
    if produced != new_tokens:
        raise RuntimeError(f"CTranslate2 decoded {produced} tokens, expected {new_tokens}")
    return decode, (model_dir / "model.bin").stat().st_size


def onnxruntime_decoder(tokenizer, prompt: str, new_tokens: int, lever: Lever):
    """Our ONNX Runtime GenAI decoding loop on the fp32 export of the bundled model, and the
    bytes of the exported weights (one fp32 copy of every matrix, the LM head included)."""
    from radreport.llm.onnx_generate import load_onnx_model, onnx_greedy_decode

    export, weights = _bundled_export()
    model = load_onnx_model(export, lever.threads)
    prompt_ids = [tokenizer(prompt)["input_ids"]]
    no_stop = DecodeRules([], tokenizer.pad_token_id)

    def decode():
        # No stop ids: every trial decodes `new_tokens`, unless the model's own end token
        # ends it first (checked below).
        return onnx_greedy_decode(model, prompt_ids, new_tokens, no_stop)

    produced = len(decode()[0])
    if produced != new_tokens:
        raise RuntimeError(f"the onnxruntime decoder produced {produced} tokens, not {new_tokens}")
    return decode, weights


def native_decoder(model, tokenizer, prompt: str, new_tokens: int, lever: Lever):
    """Our native decoder (LLMSettings.decoder "native") on one prompt and the bytes of
    weights it reads per step (checked to decode every token asked for)."""
    decode, weights = _native_decoding(
        model, tokenizer, [prompt], new_tokens, lever.threads, lever.dtype, lever.prefetch_bytes
    )
    produced = decode().shape[1]
    if produced != new_tokens:
        raise RuntimeError(f"the native decoder produced {produced} tokens, not {new_tokens}")
    return decode, weights


def _native_decoding(
    model, tokenizer, prompts, new_tokens: int, threads: int, dtype, prefetch_bytes=None
):
    """(decode callable, weight bytes per step) of the native decoder. fp32: on the fp32
    model's own weights; bf16: bfloat16 copies of the matrices, with PyTorch's prefill on the
    same values (a second fp32 model, rounded). Prompts are encoded by PyTorch in the
    precision NativeReportGenerator chooses (default_compute_dtype), which with bf16 matrices
    is also the steps' products' precision."""
    from radreport.llm.native_generate import NativeLlama, default_compute_dtype, native_decode

    if dtype == torch.bfloat16:
        model = _rounded_fp32_model()
    prefill_dtype = default_compute_dtype(dtype)
    native = NativeLlama(model, threads, dtype, prefetch_bytes, activation_dtype=prefill_dtype)
    prompt_ids = tokenizer(prompts)["input_ids"]

    def decode():
        return native_decode(
            native,
            model,
            prompt_ids,
            new_tokens,
            DecodeRules([], tokenizer.pad_token_id),
            prefill_dtype=prefill_dtype,
        )

    return decode, native.weight_bytes


@functools.lru_cache(maxsize=1)
def _rounded_fp32_model():
    from radreport.llm.native_generate import round_matrices_to_bfloat16

    model, _ = load_generation_model(bundled_model_dir(), dtype=torch.float32, device="cpu")
    round_matrices_to_bfloat16(model)
    return model


def _bundled_export() -> tuple[Path, int]:
    """The fp32 ONNX Runtime GenAI export of the bundled model (made once, then cached) and
    the bytes of its weights: one fp32 copy of every matrix, the LM head included."""
    from radreport.llm.onnx_export import onnx_model_dir

    export = onnx_model_dir(bundled_model_dir())
    return export, sum(path.stat().st_size for path in export.glob("*.onnx*"))


def _ctranslate2_model(quantization: str) -> Path:
    """The bundled folder converted once per quantisation, beside the converted model."""
    import ctranslate2

    source = bundled_model_dir()
    target = source.parent / f"{source.name}-ctranslate2-{quantization}"
    if not (target / "model.bin").is_file():
        converter = ctranslate2.converters.TransformersConverter(str(source))
        converter.convert(str(target), quantization=quantization, force=True)
    return target


def _static_compiled() -> dict:
    from transformers import CompileConfig

    compile_config = CompileConfig(fullgraph=False, dynamic=False)
    # generate() compiles only on accelerators unless this (private) switch is set.
    compile_config._compile_all_devices = True
    return {"cache_implementation": "static", "compile_config": compile_config}


def measure(decode: Callable[[], object], tokens: int, trials: int) -> Measurement:
    """Time `trials` runs of `decode`, with a bandwidth measurement before each."""
    decode()  # warm-up: first-call allocations, kernel selection, compilation
    speeds, bandwidths, reads, cpu_seconds = [], [], [], []
    for _ in range(trials):
        bandwidths.append(copy_bandwidth())
        reads.append(read_bandwidth())
        cpu_start = time.process_time()
        speeds.append(tokens / _seconds(decode))
        cpu_seconds.append(time.process_time() - cpu_start)
    cpu_ms_per_token = 1000 * statistics.median(cpu_seconds) / tokens
    return Measurement(
        max(speeds), statistics.median(speeds), max(bandwidths), max(reads), cpu_ms_per_token
    )


def measure_decode_steps(
    decode_all: Callable[[], object], decode_first: Callable[[], object], tokens: int, trials: int
) -> Measurement:
    """Tokens/s of the decode steps alone: (tokens - 1) / (time for `tokens` - time for 1).

    Both runs encode the same prompt and choose the same first token, so the prompt's
    prefill, compute-bound and not what the bandwidth limit is about, cancels out.
    """
    decode_all(), decode_first()  # warm-up: first-call allocations, kernel selection
    speeds, bandwidths, reads, cpu_seconds = [], [], [], []
    for _ in range(trials):
        bandwidths.append(copy_bandwidth())
        reads.append(read_bandwidth())
        cpu_start = time.process_time()
        first = _seconds(decode_first)
        cpu_middle = time.process_time()
        steps = _seconds(decode_all) - first
        cpu_end = time.process_time()
        speeds.append((tokens - 1) / steps)
        cpu_seconds.append((cpu_end - cpu_middle) - (cpu_middle - cpu_start))
    cpu_ms_per_token = 1000 * statistics.median(cpu_seconds) / (tokens - 1)
    return Measurement(
        max(speeds), statistics.median(speeds), max(bandwidths), max(reads), cpu_ms_per_token
    )


LEVERS = [
    Lever("model.generate, fp32, 2 threads", "generate", torch.float32, 2),
    Lever("lean loop, fp32, 2 threads, no_grad", "lean", torch.float32, 2, inference_mode=False),
    Lever("lean loop, fp32, 2 threads, inference_mode", "lean", torch.float32, 2),
    Lever("model.generate, fp32, 1 thread", "generate", torch.float32, 1),
    Lever("lean loop, fp32, 1 thread", "lean", torch.float32, 1),
    Lever("matmuls only (no decoder), fp32, 1 thread", "matmuls", torch.float32, 1),
    Lever("matmuls only (no decoder), fp32, 2 threads", "matmuls", torch.float32, 2),
    Lever("lean loop, bf16, 2 threads", "lean", torch.bfloat16, 2),
    Lever("model.generate, bf16, 2 threads", "generate", torch.bfloat16, 2),
]
COMPILE_LEVER = Lever("generate + static cache + torch.compile, fp32", "compiled", torch.float32, 2)
CTRANSLATE2_LEVERS = [
    Lever("CTranslate2 generator, fp32, 1 thread", "ctranslate2", torch.float32, 1),
    Lever("CTranslate2 generator, fp32, 2 threads", "ctranslate2", torch.float32, 2),
    Lever(
        "CTranslate2 generator, int8 weights, 1 thread",
        "ctranslate2",
        torch.float32,
        1,
        quantization="int8",
    ),
]
ONNXRUNTIME_LEVERS = [
    Lever("onnxruntime decoder (ours), fp32, 1 thread", "onnxruntime", torch.float32, 1),
    Lever("onnxruntime decoder (ours), fp32, 2 threads", "onnxruntime", torch.float32, 2),
    Lever("onnxruntime matmuls only (no decoder), fp32, 1 thread", "ort_matmuls", torch.float32, 1),
    Lever(
        "onnxruntime matmuls only (no decoder), fp32, 2 threads", "ort_matmuls", torch.float32, 2
    ),
]
NATIVE_LEVERS = [
    Lever("native decoder (ours), fp32, 1 thread", "native", torch.float32, 1),
    Lever("native decoder (ours), fp32, 2 threads", "native", torch.float32, 2),
    Lever("native decoder (ours), bf16 matrices, 1 thread", "native", torch.bfloat16, 1),
    Lever("native decoder (ours), bf16 matrices, 2 threads", "native", torch.bfloat16, 2),
    # Both prefetch choices by hand, so the table shows what the measured choice is worth.
    *(
        Lever(
            f"native decoder (ours), {label}, {threads} thread{'s' * (threads > 1)}, {ahead}",
            "native",
            dtype,
            threads,
            prefetch_bytes=distance,
        )
        for label, dtype in (("fp32", torch.float32), ("bf16 matrices", torch.bfloat16))
        for threads in (1, 2)
        for distance, ahead in ((0, "no prefetch"), (2048, "prefetch 2048 B ahead"))
    ),
]
OPENVINO_LEVERS = [
    Lever("OpenVINO on our onnxruntime export, fp32, 1 thread", "openvino", torch.float32, 1),
    Lever("OpenVINO on our onnxruntime export, fp32, 2 threads", "openvino", torch.float32, 2),
    Lever("OpenVINO matmuls only (no decoder), fp32, 1 thread", "ov_matmuls", torch.float32, 1),
    Lever("OpenVINO matmuls only (no decoder), fp32, 2 threads", "ov_matmuls", torch.float32, 2),
]
DEFAULT_LEVER = LEVERS[2]  # what ReportGenerator does on a CPU without native bf16


@dataclass
class BatchResult:
    threads: int
    batch_size: int
    measurement: Measurement


@dataclass
class LeverResult:
    lever: Lever
    measurement: Measurement
    bytes_per_token: int


def main() -> None:
    arguments = parse_arguments()
    load_at_start = os.getloadavg()[0]
    impressions = pd.read_csv(arguments.data)["impression"].dropna().tolist()
    prompts = [format_prompt(text) for text in impressions[: arguments.batch_size]]
    levers = [
        *LEVERS,
        *ONNXRUNTIME_LEVERS,
        *NATIVE_LEVERS,
        *([COMPILE_LEVER] if arguments.compile else []),
        *(CTRANSLATE2_LEVERS if arguments.ctranslate2 else []),
        *(OPENVINO_LEVERS if arguments.openvino else []),
    ]
    if arguments.only:
        fragments = [fragment.strip() for fragment in arguments.only.split(",")]
        levers = [lever for lever in levers if any(f in lever.name for f in fragments)]
    models = {
        dtype: load_generation_model(bundled_model_dir(), dtype=dtype, device="cpu")
        for dtype in (torch.float32, torch.bfloat16)
    }
    results = [measure_lever(lever, models[lever.dtype], prompts[0], arguments) for lever in levers]
    batching = measure_batching(models[DEFAULT_LEVER.dtype], prompts, arguments)
    native_batching = measure_batching(models[torch.float32], prompts, arguments, "native")
    write_report(arguments, results, batching, native_batching, load_at_start)


def measure_lever(lever: Lever, model_and_tokenizer, prompt: str, arguments) -> LeverResult:
    model, tokenizer = model_and_tokenizer
    torch.set_num_threads(lever.threads)
    decode_all, bytes_per_token = lever_decoder(
        lever, model, tokenizer, prompt, arguments.new_tokens
    )
    decode_first, _ = lever_decoder(lever, model, tokenizer, prompt, 1)
    measurement = measure_decode_steps(
        decode_all, decode_first, arguments.new_tokens, arguments.trials
    )
    result = LeverResult(lever, measurement, bytes_per_token)
    print(
        f"{lever.name}: best {result.measurement.best_tokens_per_s:.1f} tokens/s, "
        f"{result.measurement.fraction_of_limit(result.bytes_per_token):.0%} of the limit",
        flush=True,
    )
    return result


def lever_decoder(lever: Lever, model, tokenizer, prompt: str, new_tokens: int):
    """(decode callable, weight bytes read per decode step) of one lever."""
    if lever.loop == "ctranslate2":
        return ctranslate2_decoder(tokenizer, prompt, new_tokens, lever)
    if lever.loop == "onnxruntime":
        return onnxruntime_decoder(tokenizer, prompt, new_tokens, lever)
    if lever.loop == "ort_matmuls":
        return onnxruntime_matmuls_only(model, new_tokens, lever.threads), weight_bytes(model)
    if lever.loop == "native":
        return native_decoder(model, tokenizer, prompt, new_tokens, lever)
    if lever.loop == "openvino":
        return openvino_decoder(tokenizer, prompt, new_tokens, lever)
    if lever.loop == "ov_matmuls":
        return openvino_matmuls_only(model, new_tokens, lever.threads), weight_bytes(model)
    return decoder(model, tokenizer, [prompt], new_tokens, lever), weight_bytes(model)


def measure_batching(
    model_and_tokenizer, prompts: list[str], arguments, engine: str = "lean"
) -> list[BatchResult]:
    """Batch 1 (first prompt) and every prompt in one batch, on 1 and 2 threads (one thread
    is the figure a busy machine disturbs least): the default PyTorch loop and dtype
    (`engine` "lean") or the native decoder with bfloat16 matrices ("native")."""
    model, tokenizer = model_and_tokenizer
    results = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for size in (1, len(prompts)):
            batch, tokens = prompts[:size], arguments.new_tokens
            if engine == "native":
                decode, _ = _native_decoding(
                    model, tokenizer, batch, tokens, threads, torch.bfloat16
                )
            else:
                decode = decoder(model, tokenizer, batch, tokens, DEFAULT_LEVER)
            measurement = measure(decode, size * arguments.new_tokens, arguments.trials)
            results.append(BatchResult(threads, size, measurement))
            print(
                f"{engine}: {threads} threads, batch {size}: best "
                f"{measurement.best_tokens_per_s:.1f} tokens/s",
                flush=True,
            )
    return results


def _batching_lines(results: list[BatchResult]) -> list[str]:
    lines = [
        "| threads | batch | best tokens/s | median tokens/s | CPU ms/token |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {r.threads} | {r.batch_size} | {r.measurement.best_tokens_per_s:.1f} "
            f"| {r.measurement.median_tokens_per_s:.1f} | {r.measurement.cpu_ms_per_token:.0f} |"
            for r in results
        ),
        "",
    ]
    for threads in sorted({r.threads for r in results}):
        one, many = sorted((r for r in results if r.threads == threads), key=lambda r: r.batch_size)
        best = many.measurement.best_tokens_per_s / one.measurement.best_tokens_per_s
        median = many.measurement.median_tokens_per_s / one.measurement.median_tokens_per_s
        cpu = one.measurement.cpu_ms_per_token / many.measurement.cpu_ms_per_token
        lines.append(
            f"- {threads} thread(s), batch {many.batch_size} / batch 1: {best:.1f}x (best), "
            f"{median:.1f}x (median), {cpu:.1f}x (CPU time per token)"
        )
    return lines


def cpu_name() -> str:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    names = [line.split(":", 1)[1].strip() for line in lscpu.splitlines() if "Model name" in line]
    return names[0] if names else platform.processor()


def write_report(
    arguments,
    results: list[LeverResult],
    batching: list[BatchResult],
    native_batching: list[BatchResult],
    load_at_start: float,
) -> None:
    bandwidths = [result.measurement.best_bandwidth for result in results]
    reads = [result.measurement.best_read_bandwidth for result in results]
    lines = [
        "# Generation speed (bundled SmolLM2-135M-Instruct, CPU)",
        "",
        f"- Command: `nice .venv/bin/python benchmarks/generation_speed.py "
        f"--new-tokens {arguments.new_tokens} --batch-size {arguments.batch_size} "
        f"--trials {arguments.trials}{' --compile' if arguments.compile else ''}"
        f"{' --ctranslate2' if arguments.ctranslate2 else ''}"
        f"{' --openvino' if arguments.openvino else ''}`",
        f"- Date: {datetime.date.today().isoformat()}",
        f"- Machine: {cpu_name()} ({platform.machine()}), torch {torch.__version__}, "
        f"{os.cpu_count()} CPUs; 1-minute load average "
        f"{load_at_start:.1f} at start, {os.getloadavg()[0]:.1f} at end "
        f"(the CPU is shared with other jobs)",
        f"- Work: first IU X-Ray validation impressions in the Alpaca prompt, "
        f"{arguments.new_tokens} new tokens per prompt (stop tokens ignored), "
        f"{arguments.trials} trials per row after one warm-up",
        f"- Copy bandwidth (read + write counted), best per lever: "
        f"{min(bandwidths) / 1e9:.1f} to {max(bandwidths) / 1e9:.1f} GB/s; read-only "
        f"stream (a sum over the same 256 MB): {min(reads) / 1e9:.1f} to "
        f"{max(reads) / 1e9:.1f} GB/s",
        "- Limit = copy bandwidth / weight bytes read per token (every weight once; the "
        "tied embedding / LM head once); fraction = best tokens/s / limit. The read-only "
        "limit uses the read-only stream instead: a decode step only reads its weights",
        "",
        "## Batch-1 decode, each lever",
        "",
        f"Decode steps only: tokens/s = {arguments.new_tokens - 1} / (time to decode "
        f"{arguments.new_tokens} tokens - time to decode 1), per trial; the prompt's prefill "
        "and first token cancel out.",
        "",
        "| lever | best tokens/s | median tokens/s | CPU ms/token | weights MB/token "
        "| limit tokens/s | fraction of limit | fraction of read-only limit |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *(_lever_row(result) for result in results),
        "",
        *_prefetch_lines(),
        "## Batched greedy decoding with the KV cache (lean loop, fp32)",
        "",
        *_batching_lines(batching),
        "",
        "## Batched greedy decoding, native decoder (bf16 matrices, its default)",
        "",
        *_batching_lines(native_batching),
        "",
    ]
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text("\n".join(lines) + _hand_written_notes(arguments.output))
    print(f"wrote {arguments.output}")


def _prefetch_lines() -> list[str]:
    """The prefetch distances the native decoder measured and chose on this machine (rows
    without a distance in their name use them)."""
    from radreport.llm.native_kernel import build_dir
    from radreport.llm.native_prefetch import RECORD_NAME, read_record

    chosen = read_record(build_dir() / RECORD_NAME)
    if not chosen:
        return []
    return [
        "Prefetch distance the native decoder measured and chose on this machine "
        "(native_prefetch; rows that name no distance use it):",
        "",
        *(f"- {key}: {value} B" for key, value in sorted(chosen.items())),
        "",
    ]


def _hand_written_notes(output: Path) -> str:
    """The "## Notes" section a person added to an earlier report: a rerun keeps it."""
    previous = output.read_text() if output.is_file() else ""
    start = previous.find(NOTES_HEADING)
    return "" if start < 0 else "\n" + previous[start:]


def _lever_row(result: LeverResult) -> str:
    measurement = result.measurement
    limit = measurement.best_bandwidth / result.bytes_per_token
    return (
        f"| {result.lever.name} | {measurement.best_tokens_per_s:.1f} "
        f"| {measurement.median_tokens_per_s:.1f} | {measurement.cpu_ms_per_token:.0f} "
        f"| {result.bytes_per_token / 1e6:.0f} "
        f"| {limit:.1f} | {measurement.fraction_of_limit(result.bytes_per_token):.0%} "
        f"| {measurement.fraction_of_read_limit(result.bytes_per_token):.0%} |"
    )


if __name__ == "__main__":
    main()
