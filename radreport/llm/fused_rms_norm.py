"""transformers' LlamaRMSNorm as one compiled CPU kernel forward and one backward.

Eagerly, the module is eight passes over the activations forward (a cast to fp32, square,
mean, reciprocal root, product, cast back, the weight's product) and about as many backward,
each writing a full fp32 or bf16 tensor. Training a 576-wide model on 2 cores, the 61 norms
of a step took about as long as a fifth of its products (BENCHMARKS.md, "Eighteenth
session"). The kernel (training_kernels.c) reads a row, keeps its reciprocal norm, and
writes the output in one pass; the backward reads x and dy once each.

Values: the forward rounds where the module rounds, so bfloat16 outputs equal the module's
except where the row sum's different order moves the last bit of a norm; gradients are as
accurate as autograd's. Only the input's gradient is computed, so only norms with a frozen
weight take this path (LoRA training freezes them); a trainable weight, another device, or a
dtype other than bfloat16/fp32 runs the module's own forward, checked at every call.
"""

from __future__ import annotations

import torch
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from radreport.llm.instance_forward import set_instance_forward
from radreport.llm.training_kernels import kernel, runs_on


class _RMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, eps):
        rows = x.reshape(-1, x.shape[-1]).contiguous()
        out = torch.empty_like(rows)
        needs_grad = ctx.needs_input_grad[0]
        rstd = torch.empty(rows.shape[0], dtype=torch.float32) if needs_grad else None
        kernel("rms_norm_forward", rows.dtype)(
            rows.data_ptr(),
            weight.data_ptr(),
            out.data_ptr(),
            None if rstd is None else rstd.data_ptr(),  # NULL: no norms kept
            rows.shape[0],
            rows.shape[1],
            eps,
            torch.get_num_threads(),
        )
        if needs_grad:
            ctx.save_for_backward(rows, weight, rstd)
            ctx.x_shape = x.shape
        return out.view(x.shape)

    @staticmethod
    def backward(ctx, grad_out):
        rows, weight, rstd = ctx.saved_tensors
        grad_rows = grad_out.reshape(rows.shape).to(rows.dtype).contiguous()
        grad_x = torch.empty_like(rows)
        kernel("rms_norm_backward", rows.dtype)(
            rows.data_ptr(),
            weight.data_ptr(),
            rstd.data_ptr(),
            grad_rows.data_ptr(),
            grad_x.data_ptr(),
            rows.shape[0],
            rows.shape[1],
            torch.get_num_threads(),
        )
        return grad_x.view(ctx.x_shape), None, None


def fused_rms_norm_applies(norm: LlamaRMSNorm, x: torch.Tensor) -> bool:
    """Whether the kernel computes what `norm(x)` would: same dtype, frozen weight, CPU."""
    weight = norm.weight
    return (
        not weight.requires_grad
        and weight.is_contiguous()
        and weight.dim() == 1
        and x.shape[-1] == weight.shape[0]
        and runs_on(x, weight)
    )


def _forward(self: LlamaRMSNorm, hidden_states: torch.Tensor) -> torch.Tensor:
    if fused_rms_norm_applies(self, hidden_states):
        return _RMSNorm.apply(hidden_states, self.weight, float(self.variance_epsilon))
    return type(self).forward(self, hidden_states)


def install_fused_rms_norm(model: torch.nn.Module) -> int:
    """Route every LlamaRMSNorm of `model` through the kernel where it applies; returns how many.

    Instance attributes, so the class and other models are untouched; the state dict and
    saved adapters do not change.
    """
    return set_instance_forward(model, lambda module: isinstance(module, LlamaRMSNorm), _forward)
