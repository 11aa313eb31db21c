"""A LoRA linear layer's forward and backward as one autograd function: no elementwise passes.

PEFT computes an adapted projection as `base(x) + lora_B(lora_A(x)) * scaling`. Over a
small model's activations (a few thousand tokens x 576-1536 features) the scaling and the
sum are each a full pass over the output, forward and backward, and the backward adds the
two paths' input gradients in another; on a 2-core CPU these passes cost as much as the
frozen product itself (BENCHMARKS.md, "Seventeenth session"). Here the scaling is folded
into the small B matrix and both sums into the products, which accumulate in place
(`addmm_`):

    forward:  down = x A^T;  y = x W^T (+ bias);  y += down (s B)^T
    backward: g_down = g (s B);  dx = g W;  dx += g_down A;  dA = g_down^T x;  dB = s g^T down

The same products in the same compute dtype as PEFT under autocast, with fp32
accumulation inside each; the adapter's term is added to the frozen product before the
output is rounded, one rounding fewer than PEFT's.

Only plain layers take this path: one active vanilla LoRA adapter without dropout or a
bias of its own, unmerged, over a frozen unquantized `nn.Linear`. Anything else (DoRA,
dropout, a 4-bit base, several adapters, adapters disabled or merged) runs PEFT's own
forward, checked at every call.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from peft.tuners.lora import Linear as LoraLinear

from radreport.llm.instance_forward import set_instance_forward


class _LoRALinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, lora_a, lora_b, scaling, dtype):
        with torch.autocast(x.device.type, enabled=False):
            flat = x.reshape(-1, x.shape[-1]).to(dtype)
            frozen = weight.to(dtype)
            a = lora_a.to(dtype)
            b_scaled = (lora_b * scaling).to(dtype)
            down = flat @ a.t()
            out = F.linear(flat, frozen, None if bias is None else bias.to(dtype))
            out.addmm_(down, b_scaled.t())
        ctx.save_for_backward(flat, frozen, a, b_scaled, down)
        ctx.scaling = scaling
        ctx.x_shape, ctx.x_dtype = x.shape, x.dtype
        ctx.a_dtype, ctx.b_dtype = lora_a.dtype, lora_b.dtype
        return out.view(*x.shape[:-1], out.shape[-1])

    @staticmethod
    def backward(ctx, grad_out):
        flat, frozen, a, b_scaled, down = ctx.saved_tensors
        needs_x, _, _, needs_a, needs_b, _, _ = ctx.needs_input_grad
        with torch.autocast(grad_out.device.type, enabled=False):
            g = grad_out.reshape(-1, grad_out.shape[-1]).to(flat.dtype)
            g_down = g @ b_scaled
            grad_x = grad_a = grad_b = None
            if needs_x:
                grad_x = g @ frozen
                grad_x.addmm_(g_down, a)
                grad_x = grad_x.view(ctx.x_shape).to(ctx.x_dtype)
            if needs_a:
                grad_a = (g_down.t() @ flat).to(ctx.a_dtype)
            if needs_b:
                grad_b = (g.t() @ down).float().mul_(ctx.scaling).to(ctx.b_dtype)
        return grad_x, None, None, grad_a, grad_b, None, None


def _compute_dtype(x: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The dtype PEFT's products would run in: autocast's when it is on, else the base's."""
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return weight.dtype


def _single_plain_adapter(layer: LoraLinear) -> str | None:
    """The active adapter's name when the fused path computes what PEFT would, else None."""
    if layer.disable_adapters or layer.merged:
        return None
    active = [name for name in layer.active_adapters if name in layer.lora_A]
    if len(active) != 1:
        return None
    name = active[0]
    dropout = layer.lora_dropout[name]
    dropout_is_identity = isinstance(dropout, nn.Identity) or (
        isinstance(dropout, nn.Dropout) and (dropout.p == 0 or not dropout.training)
    )
    if (
        name in getattr(layer, "lora_variant", {})
        or layer.lora_B[name].bias is not None
        or not dropout_is_identity
    ):
        return None
    return name


def _fused_forward(layer: LoraLinear, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    name = None if args or kwargs else _single_plain_adapter(layer)
    if name is None:
        return type(layer).forward(layer, x, *args, **kwargs)
    base = layer.base_layer
    # A custom function's inputs must be tensors or plain values; the scale stays a float.
    return _LoRALinear.apply(
        x,
        base.weight,
        base.bias,
        layer.lora_A[name].weight,
        layer.lora_B[name].weight,
        float(layer.scaling[name]),
        _compute_dtype(x, base.weight),
    )


def _is_fusable(module: nn.Module) -> bool:
    """Static conditions: a plain LoRA linear over a frozen, unquantized nn.Linear."""
    if type(module) is not LoraLinear or getattr(module, "fan_in_fan_out", False):
        return False
    base = module.base_layer
    return (
        type(base) is nn.Linear
        and not base.weight.requires_grad
        and (base.bias is None or not base.bias.requires_grad)
    )


def install_fused_lora(model: nn.Module) -> int:
    """Route every eligible PEFT LoRA linear of `model` through the fused function.

    Sets each layer's `forward` on the instance; the class's (PEFT's) forward still runs
    whenever a call does not fit (see _single_plain_adapter). Returns how many layers.
    """
    return set_instance_forward(model, _is_fusable, _fused_forward)
