"""Keep a 4-bit base differentiable on CPUs with AVX-512 BF16 while it trains.

bitsandbytes (0.50) repacks a `Linear4bit` layer's weights into a CPU inference layout the
first time the layer runs in eval mode without gradients on a CPU with AVX-512 BF16: in
training, that is the evaluation before the first step. From then on every call of the layer,
in training too, goes to the packed kernel `bitsandbytes::gemv_4bit`, which has no autograd
formula: the backward passes nothing through the frozen weights (PyTorch only warns "may
lead to silently incorrect behavior"). The adapters still train, on gradients that skip every
quantized projection of the layers above them. Measured on such a CPU: after one evaluation,
the input gradient of a 4-bit layer is None where it was W^T g before.

Turning the repacking off on the model that trains keeps every call on bitsandbytes' autograd
path (dequantize, then a PyTorch product). Models loaded for generation keep it.
"""

from __future__ import annotations

import torch


def keep_4bit_layers_differentiable(model: torch.nn.Module) -> int:
    """Stop bitsandbytes repacking `model`'s 4-bit layers for CPU inference; returns how many
    layers it would have repacked. Call before the model's first forward."""
    try:
        from bitsandbytes.nn import Linear4bit
    except ImportError:  # no bitsandbytes, no 4-bit layers
        return 0
    count = 0
    for module in model.modules():
        if isinstance(module, Linear4bit) and getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False
            count += 1
    return count
