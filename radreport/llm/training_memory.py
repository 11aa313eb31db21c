"""Whether a training run on the CPU should recompute activations (gradient checkpointing)
instead of keeping them: what its longest batch keeps for the backward pass, against the
memory available when the run starts.

Without checkpointing, a step keeps each layer's activations for every token of its batch
until the backward pass reaches that layer. On the CPU, recomputing them costs 1.04-1.33x
the step time, so `gradient_checkpointing: auto` keeps them where they fit. Long examples
do not fit: CT findings run to hundreds of tokens, and with retrieval an example holds
several. On the bundled 135M model, 8 rows of 2,048 tokens took 19.2 GiB with fp32
products (10.1 GiB with bf16, 5.4 GiB with checkpointing), where 512 tokens took 7.8 GiB
(benchmarks/train_memory_by_length.py, BENCHMARKS.md). The count follows the model's shape:
wider hidden states keep twice what a wider MLP does, per unit.
"""

from __future__ import annotations

import logging

import torch

from radreport.llm import cache_budget
from radreport.llm.base_model import resolve_base_model
from radreport.llm.cache_budget import AUTO_MEMORY_SHARE
from radreport.llm.settings import LLMSettings

logger = logging.getLogger(__name__)

# What a token keeps for the backward pass, in values of the products' dtype: in each decoder
# layer 6 per unit of hidden size, 3 per unit of MLP width, 2 per unit of key/value width (KV
# heads x head size) and 1 per unit of LoRA rank in each of a Llama layer's seven linear
# projections; once, outside the layers, 1 per unit of hidden size (the final hidden states).
# Where the attention keeps its scores (eager), also 1 per head and per key of the token's row
# in each layer. Counted, not fitted by eye: autograd's saved-tensor hooks summed what a step
# saves on the bundled SmolLM2-135M and five random-weight Llama shapes (hidden 576-1,152, MLP
# 1,536-3,072, grouped and full KV heads, LoRA rank 16 and 64), bf16 and fp32, rows of
# 448-1,536 tokens (SDPA) and of 128-384 (the grouped eager kernel); every shape within 1 %
# (benchmarks/train_memory_by_length.py --shape, BENCHMARKS.md). Fewer adapted projections
# keep less, so counting seven stays an upper end.
SAVED_VALUES_PER_LAYER = {"hidden": 6, "mlp": 3, "kv": 2, "lora_rank": 7}
# Those are our compiled RMSNorm and SwiGLU kernels' (radreport.llm.fused_rms_norm,
# fused_swiglu), which take transformers' Llama modules only. Other model types' modules (and
# Llama's with fused_elementwise off) keep 1 more value per MLP unit and, with 16-bit
# products, 4 more bytes per hidden unit (their norms compute in fp32): measured on the same
# five shapes with fused_elementwise and fused_lora off, and on a random-weight Qwen2 model
# (8 layers, 896 / 4,864 wide, vocabulary 151,936), within 1 %. The LoRA layers keep the same
# either way.
STOCK_EXTRA_VALUES_PER_MLP = 1
STOCK_16_BIT_EXTRA_BYTES_PER_HIDDEN = 4
# With LoRA dropout, PEFT's own LoRA forward runs and each adapted projection keeps its
# dropped input and the dropout's noise: per layer 9.75 more values per hidden unit and 1 per
# MLP unit, in bf16 and fp32 alike (shapes A, B, C and E with lora_dropout 0.05, exact to
# 0.1 %; the same file).
DROPOUT_EXTRA_VALUES_PER_LAYER = {"hidden": 9.75, "mlp": 1}
# Peak memory grows by more than what is saved: the backward's working tensors for the layer
# it is in, and the allocator's slack. That part does not grow with depth. Per token and per
# unit of hidden size plus MLP width it measured -40 to 87 bytes between runs of 8 rows of
# 512 and of 1,024-2,048 tokens, and up to 117 between single rows of 448 and 960 tokens,
# whose small growth shows the peak's run-to-run wobble (the same file); 128 bytes puts the
# count above every one of them. Stock modules in fp32 grew up to 1.6x the count between
# single rows, but 0.53x between 8 rows of the shape that grew 1.57x (BENCHMARKS.md).
WORKING_BYTES_PER_WIDTH = 128
# Where the attention keeps its scores, the backward also works on one layer's scores at a
# time: per token, per head and per key of its row, the peak grew up to 30 bytes more than
# the rest of the count (fp32, 2 rows of 128 and of 384 tokens; the same file).
WORKING_BYTES_PER_SCORE = 32


def activation_bytes_per_token(
    config,
    compute_dtype: str,
    lora_rank: int,
    scores_row_tokens: int = 0,
    fused_kernels: bool = True,
    lora_dropout: bool = False,
) -> int | None:
    """Bytes one token of a batch adds to a training step's peak memory without
    checkpointing, for a model whose Hugging Face `config` has Llama's names (hidden_size,
    intermediate_size, num_hidden_layers, num_attention_heads; num_key_value_heads and
    head_dim where it has them) and LoRA adapters of `lora_rank`. Where the attention keeps
    each row's scores for the backward (eager attention), `scores_row_tokens` is the rows'
    length: a token then also keeps a score per head and per key of its row in each layer.
    `fused_kernels`: whether our RMSNorm and SwiGLU kernels run the model's layers
    (fused_kernels_take); `lora_dropout`: whether the adapters have dropout. None for a config
    without those names."""
    try:
        hidden, mlp = config.hidden_size, config.intermediate_size
        layers, heads = config.num_hidden_layers, config.num_attention_heads
    except AttributeError:
        return None
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    kv = (getattr(config, "num_key_value_heads", None) or heads) * head_dim
    counts = SAVED_VALUES_PER_LAYER
    values = counts["hidden"] * hidden + counts["mlp"] * mlp + counts["kv"] * kv
    per_layer = values + counts["lora_rank"] * lora_rank
    per_layer += heads * scores_row_tokens
    value_bytes = getattr(torch, compute_dtype).itemsize
    if not fused_kernels:
        per_layer += STOCK_EXTRA_VALUES_PER_MLP * mlp
        if value_bytes == 2:
            per_layer += STOCK_16_BIT_EXTRA_BYTES_PER_HIDDEN // value_bytes * hidden
    if lora_dropout:
        dropout = DROPOUT_EXTRA_VALUES_PER_LAYER
        per_layer += dropout["hidden"] * hidden + dropout["mlp"] * mlp
    saved = int(value_bytes * (layers * per_layer + hidden))
    working = WORKING_BYTES_PER_WIDTH * (hidden + mlp)
    working += WORKING_BYTES_PER_SCORE * heads * scores_row_tokens
    return saved + working


def checkpointing_needed(batch_activation_bytes: int, available_bytes: int) -> bool:
    """True where a batch's activations would take more than AUTO_MEMORY_SHARE of the memory
    available: the rest holds the model, its gradients and optimizer state, the allocator's
    slack and the machine's other processes."""
    return batch_activation_bytes > AUTO_MEMORY_SHARE * available_bytes


def fused_kernels_take(config, settings: LLMSettings, compute_dtype: str) -> bool:
    """Whether our compiled RMSNorm and SwiGLU kernels will run this model's layers: they take
    transformers' Llama modules, with fused_elementwise on and bf16 or fp32 products."""
    return (
        settings.fused_elementwise
        and getattr(config, "model_type", None) == "llama"
        and compute_dtype in ("bfloat16", "float32")
    )


def attention_keeps_scores(attention: str, row_tokens: int) -> bool:
    """Whether the training attention `attention` (resolved, not "auto") keeps each row's
    score matrix for the backward at rows of `row_tokens`: eager always, the CPU default
    (radreport.llm.grouped_attention) up to its eager limit; SDPA never."""
    from radreport.llm.grouped_attention import ATTENTION_NAME, GROUPED_EAGER_MAX_TOKENS

    if attention == ATTENTION_NAME:
        return row_tokens <= GROUPED_EAGER_MAX_TOKENS
    return attention == "eager"


def settings_bytes_per_token(
    config, settings: LLMSettings, compute_dtype: str, attention: str, row_tokens: int
) -> int | None:
    """activation_bytes_per_token for training with `settings` (resolved `compute_dtype` and
    `attention`) on rows of `row_tokens`: the LoRA rank and dropout, the scores the attention
    keeps at that length, and whether the fused kernels take the model."""
    scores = row_tokens if attention_keeps_scores(attention, row_tokens) else 0
    return activation_bytes_per_token(
        config,
        compute_dtype,
        settings.lora_r,
        scores,
        fused_kernels_take(config, settings, compute_dtype),
        settings.lora_dropout > 0,
    )


def cpu_batches_need_checkpointing(
    settings: LLMSettings, compute_dtype: str, attention: str
) -> bool:
    """Whether the longest batch (per_device_batch_size rows of max_seq_length tokens) would
    keep more activations than the CPU's memory holds, said in a log line when it would. A
    max_seq_length still "auto" is sized later by the data: no recomputation, as before.
    `attention` is the resolved training attention of the hf backend, whose kernels this
    counts (radreport.llm.device always recomputes with unsloth)."""
    if not isinstance(settings.max_seq_length, int):
        return False
    # Imported here: radreport.llm.device imports this module before unsloth has patched
    # transformers, and this runs only once the backend is imported (finetune).
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(resolve_base_model(settings.base_model))
    except (OSError, ValueError):
        # A hub id out of reach or a folder that is not a model: loading the model says
        # which, in its own words.
        return False
    row_tokens = settings.max_seq_length
    per_token = settings_bytes_per_token(config, settings, compute_dtype, attention, row_tokens)
    if per_token is None:
        logger.info(
            "gradient checkpointing off (auto): %s's config does not name its layer sizes as "
            "Llama's does, so its activations are not counted; set gradient_checkpointing: "
            "true where long batches would not fit",
            settings.base_model,
        )
        return False
    tokens = settings.per_device_batch_size * row_tokens
    needed = tokens * per_token
    available = cache_budget.available_memory_bytes(torch.device("cpu"))
    if not checkpointing_needed(needed, available):
        return False
    logger.info(
        "gradient checkpointing on (auto): batches of %d x %d tokens would keep about %.1f GiB "
        "of activations, more than %d %% of the %.1f GiB available",
        settings.per_device_batch_size,
        settings.max_seq_length,
        needed / 2**30,
        AUTO_MEMORY_SHARE * 100,
        available / 2**30,
    )
    return True
