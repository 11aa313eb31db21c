"""The Llama MLP's SiLU-gated product, `silu(gate) * up`, as one compiled CPU kernel each way.

Eagerly it is two passes forward (F.silu, the product) that keep `silu(gate)` for the
backward, and three backward (two products and silu_backward), each over the
intermediate-size activations, the widest of a layer. The kernel (training_kernels.c) writes
the product in one pass and the two gradients in another, recomputing the sigmoid instead of
storing `silu(gate)`. It is not faster: at [8, 162-736, 1536] in bfloat16 it takes what eager
PyTorch takes (0.9-1.1x, `benchmarks/elementwise_kernels.py`; the exponential and the bf16
conversions keep it compute-bound). What it saves is memory: one activation of the MLP's
width fewer per layer kept for the backward (30 layers x [8, 620, 1536] bf16 is 0.46 GB for
a typical batch of the IU config's k=3 prompts).

Values: rounded where autograd's chain rounds, so bfloat16 outputs and gradients equal
eager PyTorch's up to the exponential's last fp32 bit. MLPs whose activation is not SiLU,
and tensors on another device or of another dtype, run transformers' own forward.
"""

from __future__ import annotations

import torch
from transformers.models.llama.modeling_llama import LlamaMLP

from radreport.llm.instance_forward import set_instance_forward
from radreport.llm.training_kernels import kernel, runs_on


class _SwiGLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gate, up):
        gate, up = gate.contiguous(), up.contiguous()
        out = torch.empty_like(gate)
        kernel("swiglu_forward", gate.dtype)(
            gate.data_ptr(), up.data_ptr(), out.data_ptr(), gate.numel(), torch.get_num_threads()
        )
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            ctx.save_for_backward(gate, up)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        gate, up = ctx.saved_tensors
        grad_out = grad_out.to(gate.dtype).contiguous()
        grad_gate, grad_up = torch.empty_like(gate), torch.empty_like(up)
        kernel("swiglu_backward", gate.dtype)(
            gate.data_ptr(),
            up.data_ptr(),
            grad_out.data_ptr(),
            grad_gate.data_ptr(),
            grad_up.data_ptr(),
            gate.numel(),
            torch.get_num_threads(),
        )
        return grad_gate, grad_up


def silu_gated(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """`F.silu(gate) * up`, through the kernel where it takes these tensors."""
    if gate.shape == up.shape and runs_on(gate, up):
        return _SwiGLU.apply(gate, up)
    return torch.nn.functional.silu(gate) * up


def _forward(self: LlamaMLP, x: torch.Tensor) -> torch.Tensor:
    return self.down_proj(silu_gated(self.gate_proj(x), self.up_proj(x)))


def _is_silu_gated(module: torch.nn.Module) -> bool:
    return isinstance(module, LlamaMLP) and getattr(module.config, "hidden_act", None) == "silu"


def install_fused_swiglu(model: torch.nn.Module) -> int:
    """Route every SiLU-gated LlamaMLP of `model` through the kernel; returns how many.

    Instance attributes, so the class and other models are untouched; the state dict and
    saved adapters do not change.
    """
    return set_instance_forward(model, _is_silu_gated, _forward)
