"""Report generation whose decode steps run in our own C kernel (`LLMSettings.decoder: native`).

A decode step of a small batch reads every weight once, so its speed is how fast the
matrix-vector products stream the weights; the kernel (llama_decode_step.c) streams them at
about the rate of a memory copy, where on the AMD hosts we measured PyTorch and ONNX Runtime
reach 35-75 % of it (benchmarks/results/generation.md). Prompts are still encoded by the
PyTorch model, several at a time, padded on the right (prefill is matrix-matrix work, where
PyTorch is fast; in fp32, or in bf16 on CPUs that compute it natively); a prompt's keys and
values become the read-only prefix of every row decoding it, and each row appends to caches
of its own. Same stop tokens, repeat blocking, stop bias and section stop as the PyTorch
loop; with fp32 products, the same tokens as the fp32 PyTorch model up to the order of
additions. Greedy and MBR decoding run natively; beam search runs on the fp32 model.

The kernel reads the matrices in fp32 or, half the bytes per step, in bfloat16; with
bfloat16 the PyTorch model's matrices are rounded to the same values, so prefill and decode
steps use the same weights. Its products are fp32 or, with bfloat16 matrices on CPUs with
AVX-512 BF16, bfloat16 pairs summed in fp32 (NativeLlama's activation_dtype).
Llama-architecture models only (SmolLM2, Llama 3, ...), on the CPU.
"""

from __future__ import annotations

import contextlib
import ctypes
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import DynamicCache

from radreport.data.alpaca import text_ids
from radreport.llm.cache_budget import cache_bytes_per_position
from radreport.llm.decode_rows import Choose, DecodeRows
from radreport.llm.decode_rules import DecodeRules
from radreport.llm.generate import (
    ReportGenerator,
    default_dtype,
    dtype_name,
    epsilon_sampler,
    most_probable,
)
from radreport.llm.native_kernel import NativeDecoderUnavailable, build_dir, load_kernel
from radreport.llm.native_prefetch import RECORD_NAME, fastest_prefetch, remembered_prefetch

# Order of each layer's tensors in the kernel's table (llama_decode_step.c, TENSORS_PER_LAYER).
_LAYER_TENSORS = (
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
    "input_layernorm",
    "post_attention_layernorm",
)


class UnsupportedModel(NativeDecoderUnavailable):
    """A model the native kernel cannot run (not a plain fp32 Llama architecture)."""


class _LlamaModel(ctypes.Structure):
    _fields_ = [
        ("layers", ctypes.c_int),
        ("hidden", ctypes.c_int),
        ("heads", ctypes.c_int),
        ("kv_heads", ctypes.c_int),
        ("head_dim", ctypes.c_int),
        ("intermediate", ctypes.c_int),
        ("vocab", ctypes.c_int),
        ("norm_eps", ctypes.c_float),
        ("rope_scaling", ctypes.c_float),
        ("bf16_matrices", ctypes.c_int),
        ("bf16_activations", ctypes.c_int),
        ("threads", ctypes.c_int),
        ("prefetch_bytes", ctypes.c_int),
        ("embed", ctypes.c_void_p),
        ("final_norm", ctypes.c_void_p),
        ("lm_head", ctypes.c_void_p),
        ("inv_freq", ctypes.c_void_p),
        ("layer_tensors", ctypes.POINTER(ctypes.c_void_p)),
    ]


def _architecture_problems(config) -> list[str]:
    problems = []
    if config.model_type != "llama":
        problems.append(f"model_type is {config.model_type!r}, not 'llama'")
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        problems.append("its projections have biases")
    if getattr(config, "hidden_act", "silu") != "silu":
        problems.append(f"hidden_act is {config.hidden_act!r}, not 'silu'")
    return problems


def check_native_decoder_can_load(model_dir: str | Path) -> None:
    """UnsupportedModel or NativeKernelError, before any weights are loaded, for a model
    folder (or hub id) whose config the kernel cannot run or where the kernel cannot be
    built: `decoder: auto` then loads the model once, for torch, instead of twice."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    problems = _architecture_problems(config)
    if getattr(config, "quantization_config", None) is not None:
        problems.append("its weights are quantized")
    if problems:
        raise UnsupportedModel("the native decoder cannot run this model: " + "; ".join(problems))
    build_dir()  # the compiler names the build, even where the kernel was built before
    load_kernel()


def _check_supported(model) -> None:
    config = model.config
    problems = _architecture_problems(config)
    if getattr(model, "hf_quantizer", None) is not None:
        problems.append("its weights are quantized")
    dtypes = {parameter.dtype for parameter in model.parameters()}
    if dtypes != {torch.float32}:
        problems.append(f"its weights are {sorted(map(str, dtypes))}, not torch.float32")
    if model.device.type != "cpu":
        problems.append(f"it is on {model.device}, not the CPU")
    if problems:
        raise UnsupportedModel("the native decoder cannot run this model: " + "; ".join(problems))


def round_matrices_to_bfloat16(model) -> None:
    """Round the model's matrices (projections, embedding, LM head) to bfloat16 values, kept
    in fp32 storage: PyTorch's prefill then computes with the very weights that the kernel
    reads as bfloat16 (`NativeLlama(..., matrix_dtype=torch.bfloat16)`)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
                module.weight.copy_(module.weight.to(torch.bfloat16).float())


class NativeLlama:
    """A loaded fp32 Llama model's weights, handed to the kernel by pointer.

    `matrix_dtype` torch.bfloat16 gives the kernel bfloat16 copies of the matrices (half the
    bytes a decode step reads; its arithmetic stays fp32); the caller's model should hold the
    same values (round_matrices_to_bfloat16), so that its prefill agrees with the steps.
    `activation_dtype` torch.bfloat16 (with bfloat16 matrices) rounds the products' inputs to
    bfloat16 too and multiplies pairs with the CPU's bf16 dot-product instruction, summing in
    fp32 as PyTorch's bf16 autocast does: a batch's steps are bound by the products, and this
    doubles the products per instruction. Where this kernel build has no such instruction
    (no AVX-512 BF16) the products stay fp32; `activation_dtype` says which ran.
    `prefetch_bytes` is how far ahead a batch-1 step prefetches its weights (0: not at all);
    None measures the choices on this machine once and remembers (native_prefetch).
    """

    def __init__(
        self,
        model,
        num_threads: int | None = None,
        matrix_dtype: torch.dtype = torch.float32,
        prefetch_bytes: int | None = None,
        activation_dtype: torch.dtype = torch.float32,
    ):
        _check_supported(model)
        if matrix_dtype not in (torch.float32, torch.bfloat16):
            raise UnsupportedModel(
                f"the native decoder stores matrices in float32 or bfloat16, not {matrix_dtype}"
            )
        if activation_dtype not in (torch.float32, torch.bfloat16):
            raise UnsupportedModel(
                f"the native decoder multiplies float32 or bfloat16 inputs, not {activation_dtype}"
            )
        if activation_dtype == torch.bfloat16 and matrix_dtype != torch.bfloat16:
            raise UnsupportedModel(
                "bfloat16 products need bfloat16 matrices (matrix_dtype=torch.bfloat16)"
            )
        self.kernel = load_kernel()
        if not self.kernel.llama_has_bf16_products():
            activation_dtype = torch.float32
        self.activation_dtype = activation_dtype
        config = model.config
        base = model.model
        self.layers = config.num_hidden_layers
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or (
            config.hidden_size // config.num_attention_heads
        )
        self.vocab = model.lm_head.weight.shape[0]

        def matrix(weight: torch.Tensor) -> torch.Tensor:
            return weight.detach().to(matrix_dtype).contiguous()

        # Kept referenced: the kernel reads these tensors' memory directly.
        self._tensors = [
            (matrix if "proj" in name else torch.Tensor.contiguous)(
                layer.get_submodule(name).weight.detach()
            )
            for layer in base.layers
            for name in _LAYER_TENSORS
        ]
        self._embed = matrix(base.embed_tokens.weight)
        tied = model.lm_head.weight.data_ptr() == base.embed_tokens.weight.data_ptr()
        self._lm_head = self._embed if tied else matrix(model.lm_head.weight)
        self._final_norm = base.norm.weight.detach().contiguous()
        rotary = base.rotary_emb
        self._inv_freq = rotary.inv_freq.detach().float().contiguous()
        self._table = (ctypes.c_void_p * len(self._tensors))(
            *(tensor.data_ptr() for tensor in self._tensors)
        )
        self._model = _LlamaModel(
            layers=self.layers,
            hidden=config.hidden_size,
            heads=config.num_attention_heads,
            kv_heads=self.kv_heads,
            head_dim=self.head_dim,
            intermediate=config.intermediate_size,
            vocab=self.vocab,
            norm_eps=config.rms_norm_eps,
            rope_scaling=float(getattr(rotary, "attention_scaling", 1.0)),
            bf16_matrices=int(matrix_dtype == torch.bfloat16),
            bf16_activations=int(activation_dtype == torch.bfloat16),
            threads=num_threads or 0,  # 0: all cores
            prefetch_bytes=0,
            embed=self._embed.data_ptr(),
            final_norm=self._final_norm.data_ptr(),
            lm_head=self._lm_head.data_ptr(),
            inv_freq=self._inv_freq.data_ptr(),
            layer_tensors=self._table,
        )

        if prefetch_bytes is None:
            # The count the kernel will run with: OMP_NUM_THREADS or torch.set_num_threads
            # change it, so the record's key asks the kernel rather than counting cores.
            threads = num_threads or self.kernel.llama_default_threads()
            key = (
                f"{matrix_dtype} matrices, {activation_dtype} products, {threads} threads, "
                f"{self.weight_bytes} weight bytes"
            )
            prefetch_bytes = remembered_prefetch(
                build_dir() / RECORD_NAME,
                key,
                lambda: fastest_prefetch(self.seconds_per_step),
            )
        self._model.prefetch_bytes = prefetch_bytes

    @property
    def prefetch_bytes(self) -> int:
        return self._model.prefetch_bytes

    def seconds_per_step(self, prefetch_bytes: int, steps: int = 4) -> float:
        """Mean wall time of a batch-1 decode step with this prefetch distance, after one
        step of warm-up; the model keeps the distance it had."""
        kept = self._model.prefetch_bytes
        self._model.prefetch_bytes = prefetch_bytes
        try:
            no_prefix = torch.empty(self.layers, self.kv_heads, 0, self.head_dim)
            own = self.empty_cache(steps + 1), self.empty_cache(steps + 1)
            cache = RowCache(no_prefix, no_prefix, *own)
            self.step([0], [0], [cache])
            start = time.perf_counter()
            for position in range(1, steps + 1):
                self.step([0], [position], [cache])
            return (time.perf_counter() - start) / steps
        finally:
            self._model.prefetch_bytes = kept

    @property
    def weight_bytes(self) -> int:
        """Bytes of weights a decode step reads (a tied embedding / LM head once)."""
        distinct = {t.data_ptr(): t for t in [*self._tensors, self._embed, self._lm_head]}
        distinct[self._final_norm.data_ptr()] = self._final_norm
        return sum(t.numel() * t.element_size() for t in distinct.values())

    def empty_cache(self, capacity: int) -> torch.Tensor:
        """Keys (or values) for `capacity` positions of one row: [layers, kv_heads, capacity,
        head_dim]."""
        return torch.empty(self.layers, self.kv_heads, capacity, self.head_dim)

    def step(
        self,
        tokens: Sequence[int],
        positions: Sequence[int],
        caches: Sequence[RowCache],
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Next-token logits (rows, vocab) after feeding each row its token at its position;
        the step writes that position into the row's own caches. `out`: a contiguous fp32
        (>= rows, vocab) tensor whose first rows receive the logits; a decoding loop reuses
        one, so that a batch's logits (25 MB at 128 rows of SmolLM2) are not fresh memory,
        page-faulted and zeroed, at every step."""
        rows = len(tokens)
        if out is None:
            logits = torch.empty(rows, self.vocab)
        else:
            if out.dtype != torch.float32 or out.shape[1:] != (self.vocab,) or len(out) < rows:
                raise ValueError(
                    f"out must be float32 with at least {rows} rows of {self.vocab} logits, "
                    f"not {out.dtype} {tuple(out.shape)}"
                )
            if not out.is_contiguous():
                raise ValueError("out must be contiguous")
            logits = out[:rows]

        def pointers(tensors):
            return (ctypes.c_void_p * rows)(*(tensor.data_ptr() for tensor in tensors))

        status = self.kernel.llama_decode_step(
            ctypes.byref(self._model),
            ctypes.c_int(rows),
            (ctypes.c_int * rows)(*tokens),
            (ctypes.c_int * rows)(*positions),
            pointers(cache.prefix_keys for cache in caches),
            pointers(cache.prefix_values for cache in caches),
            (ctypes.c_int * rows)(*(cache.prefix_keys.shape[2] for cache in caches)),
            pointers(cache.keys for cache in caches),
            pointers(cache.values for cache in caches),
            (ctypes.c_int * rows)(*(cache.keys.shape[2] for cache in caches)),
            ctypes.c_void_p(logits.data_ptr()),
        )
        if status != 0:
            raise MemoryError(f"the native decode step could not allocate buffers for {rows} rows")
        return logits


@dataclass
class RowCache:
    """One row's keys and values, each [layers, kv_heads, positions, head_dim]: the prompt's
    (read only, shared by the rows decoding the same prompt) and the row's own."""

    prefix_keys: torch.Tensor
    prefix_values: torch.Tensor
    keys: torch.Tensor
    values: torch.Tensor


def _prefill(
    model, ids: Sequence[int], dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One prompt's last logits and its keys and values in the kernel's layout (fp32).

    `dtype` bfloat16 runs the fp32 model's matrix products in bfloat16 (autocast): a long
    prompt's prefill is compute-bound, and on CPUs with native bf16 that is about 1.9x
    faster (700 tokens: 0.64-0.70 s against 1.19 s on the AMD host). The keys, values and
    logits then carry bf16 rounding, as the PyTorch decoder's do on such CPUs.
    """
    cache = DynamicCache(config=model.config)
    precision = (
        torch.autocast("cpu", dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
    )
    with precision:
        hidden = model.model(
            input_ids=torch.tensor([list(ids)], dtype=torch.long),
            past_key_values=cache,
            use_cache=True,
        )
        logits = model.lm_head(hidden.last_hidden_state[0, -1]).float()
    keys, values = (
        torch.stack([getattr(layer, part)[0] for layer in cache.layers]).float().contiguous()
        for part in ("keys", "values")
    )
    return logits, keys, values


@torch.inference_mode()
def native_decode(
    native: NativeLlama,
    model,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    rules: DecodeRules,
    copies: int = 1,
    choose: Choose = most_probable,
    prefill_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """New token ids (len(prompts) * copies, <= max_new_tokens), the rules' pad id after a
    stop: the native counterpart of generate._decode_loop, by the same `rules`.

    Each prompt is encoded once by the PyTorch `model` and its cache given to `copies` rows
    (MBR's candidates); `choose(logits, rows)` picks the next token of each unfinished row.
    A finished row's caches are simply dropped: the others are not moved. The rows of one
    prompt share its cache, so MBR's candidates read the prompt's keys and values once each
    but store them once.
    """
    # Each prompt is encoded alone: a batched bf16 prefill rounds a prompt's logits by its
    # neighbours' shapes, which moves an occasional token, so a study's report depended on
    # the studies beside it (greedy: 3 of 24 IU val impressions on the demo model; MBR: 13
    # of 16 the same). Alone, 48 greedy reports took 34.0 s against 32.3 s (median of 3).
    encoded = [_prefill(model, ids, prefill_dtype) for ids in prompts]
    first_logits, caches, positions = [], [], []
    for ids, (logits, prompt_keys, prompt_values) in zip(prompts, encoded, strict=True):
        for _ in range(copies):  # the copies share the prompt's cache: no copy is made
            first_logits.append(logits)
            own = native.empty_cache(max_new_tokens), native.empty_cache(max_new_tokens)
            caches.append(RowCache(prompt_keys, prompt_values, *own))
            positions.append(len(ids))
    logits = torch.stack(first_logits)
    decoding = DecodeRows(len(caches), max_new_tokens, rules, choose)
    step_logits = torch.empty(len(caches), native.vocab)  # reused by every step
    for step in range(max_new_tokens):
        next_ids, going = decoding.choose(logits)
        if step == max_new_tokens - 1 or not bool(going.any()):
            break
        if not bool(going.all()):
            kept = going.nonzero().squeeze(-1)
            kept_rows = kept.tolist()
            next_ids = next_ids[kept]
            caches = [caches[index] for index in kept_rows]
            positions = [positions[index] for index in kept_rows]
            decoding.keep(kept)
        logits = native.step(next_ids.tolist(), positions, caches, out=step_logits)
        positions = [position + 1 for position in positions]
    return decoding.result()


def default_compute_dtype(matrix_dtype: torch.dtype) -> torch.dtype:
    """The products' precision to go with the kernel's matrices: with bfloat16 matrices, the
    CPU's own default (bfloat16 where it computes bf16 natively); with fp32 matrices, fp32,
    so the reports stay exactly the fp32 model's."""
    if matrix_dtype == torch.bfloat16:
        return default_dtype(torch.device("cpu"))
    return torch.float32


class NativeReportGenerator(ReportGenerator):
    """ReportGenerator whose greedy and MBR decode steps run in the native kernel; the fp32
    PyTorch model encodes prompts and runs beam search.

    `compute_dtype` is the precision of the matrix products: fp32, or bfloat16 (faster on
    CPUs with native bf16) for the prompts' encoding and, with bfloat16 matrices, the decode
    steps' products too (NativeLlama's activation_dtype). None: default_compute_dtype. With
    fp32 products the reports are exactly those of the fp32 PyTorch model holding the same
    weights.
    """

    def __init__(
        self,
        model_dir: str | Path,
        adapter_dir: str | Path | None = None,
        *,
        num_threads: int | None = None,
        matrix_dtype: torch.dtype = torch.float32,
        compute_dtype: torch.dtype | None = None,
        **options,
    ):
        super().__init__(model_dir, adapter_dir, device="cpu", dtype=torch.float32, **options)
        if matrix_dtype == torch.bfloat16:
            round_matrices_to_bfloat16(self.model)  # prefill and beams on the same values
        self.matrix_dtype = matrix_dtype
        self.compute_dtype = compute_dtype or default_compute_dtype(matrix_dtype)
        # bfloat16 products need bfloat16 matrices; fp32 matrices keep every product fp32.
        bf16_products = matrix_dtype == torch.bfloat16 and self.compute_dtype == torch.bfloat16
        self.native = NativeLlama(
            self.model,
            num_threads,
            matrix_dtype,
            activation_dtype=torch.bfloat16 if bf16_products else torch.float32,
        )

    def decoding_engine(self) -> dict[str, str]:
        return {
            "decoder": "native",
            "device": "cpu",
            "matrix_dtype": dtype_name(self.matrix_dtype),
            "compute_dtype": dtype_name(self.compute_dtype),
        }

    def _cache_positions(
        self, lengths: list[int], max_new_tokens: int, copies: int, num_beams: int
    ) -> int:
        """Greedy and MBR rows keep a prompt's positions once, shared by its `copies`, and
        their own room to write (native_decode); beams are PyTorch's, a full cache per beam."""
        if num_beams > 1:
            return super()._cache_positions(lengths, max_new_tokens, copies, num_beams)
        room = self._room_to_write(max(lengths), max_new_tokens)
        return sum(lengths) + len(lengths) * copies * room

    def cache_bytes_per_position(self) -> int:
        """The kernel's caches are fp32 whatever its matrices' dtype (NativeLlama.empty_cache)."""
        return cache_bytes_per_position(self.model.config, torch.float32.itemsize)

    def _native_args(self, prompts: list[str], max_new_tokens: int) -> tuple:
        prompt_ids = text_ids(self.tokenizer, prompts)
        longest = max(len(ids) for ids in prompt_ids)
        return (
            self.native,
            self.model,
            prompt_ids,
            self._room_to_write(longest, max_new_tokens),
            self.rules,
        )

    def _generate_batch(self, prompts: list[str], num_beams: int, max_new_tokens: int) -> list[str]:
        if num_beams > 1:
            return super()._generate_batch(prompts, num_beams, max_new_tokens)
        new_ids = native_decode(
            *self._native_args(prompts, max_new_tokens), prefill_dtype=self.compute_dtype
        )
        return [self._text_before_stop(row) for row in new_ids.tolist()]

    def _candidate_batch(
        self, prompts: list[str], max_new_tokens: int, generators: list[torch.Generator]
    ) -> list[list[str]]:
        n = self.mbr_candidates
        new_ids = native_decode(
            *self._native_args(prompts, max_new_tokens),
            copies=n,
            choose=epsilon_sampler(n, self.mbr_epsilon, generators),
            prefill_dtype=self.compute_dtype,
        )
        texts = [self._text_before_stop(row) for row in new_ids.tolist()]
        return [texts[start : start + n] for start in range(0, len(texts), n)]
