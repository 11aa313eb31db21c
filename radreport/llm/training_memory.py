"""Whether a training run on the CPU should recompute activations (gradient checkpointing)
instead of keeping them: what its longest batch keeps for the backward pass, against the
memory available when the run starts.

Without checkpointing, a step keeps each layer's activations for every token of its batch
until the backward pass reaches that layer. On the CPU, recomputing them costs 1.04-1.33x
the step time, so `gradient_checkpointing: auto` keeps them where they fit. Long examples
do not fit: CT findings run to hundreds of tokens, and with retrieval an example holds
several. On the bundled 135M model, 8 rows of 2,048 tokens took 19.2 GiB with fp32
products (10.1 GiB with bf16, 5.4 GiB with checkpointing), where 512 tokens took 7.8 GiB
(benchmarks/train_memory_by_length.py, BENCHMARKS.md).
"""

from __future__ import annotations

import logging

import torch

from radreport.llm import cache_budget
from radreport.llm.base_model import resolve_base_model
from radreport.llm.cache_budget import AUTO_MEMORY_SHARE
from radreport.llm.settings import LLMSettings

logger = logging.getLogger(__name__)

# Bytes a token keeps per layer, per unit of the layer's width (hidden size plus MLP width),
# without checkpointing, by the dtype of the products. Measured on the bundled SmolLM2-135M
# (30 layers, 576 + 1,536 wide), LoRA rank 64 on all linear layers, batch 8, 512-2,048
# tokens a row: peak memory grew 0.48-0.67 GiB (bf16) and 0.93 GiB (fp32) per 1,000 tokens
# of a row, 8.1-11.3 and 15.8 bytes a width unit (benchmarks/train_memory_by_length.py).
ACTIVATION_BYTES_PER_WIDTH = {"bfloat16": 11.3, "float16": 11.3, "float32": 15.8}


def activation_bytes_per_token(config, compute_dtype: str) -> int:
    """Bytes one token of a batch keeps for the backward pass over all layers, for a model
    whose Hugging Face `config` has Llama's names."""
    width = config.hidden_size + config.intermediate_size
    return int(config.num_hidden_layers * width * ACTIVATION_BYTES_PER_WIDTH[compute_dtype])


def checkpointing_needed(batch_activation_bytes: int, available_bytes: int) -> bool:
    """True where a batch's activations would take more than AUTO_MEMORY_SHARE of the memory
    available: the rest holds the model, its gradients and optimizer state, the allocator's
    slack and the machine's other processes."""
    return batch_activation_bytes > AUTO_MEMORY_SHARE * available_bytes


def cpu_batches_need_checkpointing(settings: LLMSettings, compute_dtype: str) -> bool:
    """Whether the longest batch (per_device_batch_size rows of max_seq_length tokens) would
    keep more activations than the CPU's memory holds, said in a log line when it would. A
    max_seq_length still "auto" is sized later by the data: no recomputation, as before."""
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
    tokens = settings.per_device_batch_size * settings.max_seq_length
    needed = tokens * activation_bytes_per_token(config, compute_dtype)
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
