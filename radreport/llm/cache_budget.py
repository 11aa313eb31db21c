"""How many key/value cache positions one decode batch may hold.

A decode batch's memory grows with its rows times their length: every row keeps the keys
and values of each position it has seen (its prompt's and its own), for every layer. With
long prompts, long reports, MBR candidates or beams, a fixed number of prompts per batch
can ask for more than the machine holds: 16 prompts of 5,000 tokens on Llama 3 8B keep
about 10 GiB. The generator therefore caps the positions a batch holds
(`LLMSettings.generation_batch_tokens`); this module says what a position costs and how
many fit when the cap is "auto".
"""

from __future__ import annotations

import torch

# "auto" gives a batch's caches this share of the memory available when decoding starts.
# The rest covers what else a batch allocates (the prompts' encoding, the logits, the
# allocator's slack: peaks measured 1.16-2.0x the positions' bytes,
# benchmarks/generation_batch_memory.py) and the other processes on the machine.
AUTO_MEMORY_SHARE = 0.5


def cache_bytes_per_position(config, element_bytes: int) -> int:
    """Bytes one row's keys and values take per position, over all layers, for a model
    whose Hugging Face `config` has Llama's names (grouped-query attention included)."""
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return config.num_hidden_layers * 2 * kv_heads * head_dim * element_bytes


def available_memory_bytes(device: torch.device) -> int:
    """Memory a new allocation can take now: on CUDA the GPU's free memory and what
    PyTorch's caching allocator holds unused (reserved, not allocated: the device counts it
    as taken, but PyTorch's next tensors reuse it); else the system's available memory
    (free plus reclaimable page cache)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        unused = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + unused)
    import psutil

    return int(psutil.virtual_memory().available)


def auto_batch_tokens(available_bytes: int, bytes_per_position: int) -> int:
    """The positions AUTO_MEMORY_SHARE of `available_bytes` holds; at least 1, so a batch of
    one prompt always decodes (and fails for want of memory, rather than never starting)."""
    if bytes_per_position <= 0:
        raise ValueError(f"bytes_per_position must be positive, got {bytes_per_position}")
    return max(1, int(available_bytes * AUTO_MEMORY_SHARE) // bytes_per_position)
