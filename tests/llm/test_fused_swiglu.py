"""The fused SiLU-gated product equals eager PyTorch's, and only SiLU MLPs take it."""

import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaMLP

from radreport.llm import training_kernels
from radreport.llm.fused_swiglu import install_fused_swiglu, silu_gated

EXTREMES = [0.0, -0.0, 30.0, -30.0, 88.0, 89.0, -88.0, -90.0, -104.0, -200.0, 1e4, -1e4]


def gate_and_up(dtype, size=20_000):
    generator = torch.Generator().manual_seed(5)
    gate = torch.cat([4 * torch.randn(size, generator=generator), torch.tensor(EXTREMES)])
    up = torch.randn(gate.shape, generator=generator)
    return gate.to(dtype), up.to(dtype)


def product_and_grads(function, gate, up, grad):
    gate, up = gate.clone().requires_grad_(True), up.clone().requires_grad_(True)
    out = function(gate, up)
    out.backward(grad)
    return out.detach(), gate.grad, up.grad, out.grad_fn.name()


def test_bf16_product_and_gradients_equal_eager_pytorch():
    gate, up = gate_and_up(torch.bfloat16)
    grad = torch.randn(gate.shape, generator=torch.Generator().manual_seed(6)).to(torch.bfloat16)
    ours = product_and_grads(silu_gated, gate, up, grad)
    eager = product_and_grads(lambda g, u: F.silu(g) * u, gate, up, grad)
    assert "SwiGLU" in ours[3]
    for got, expected in zip(ours[:3], eager[:3], strict=True):
        # Rounded where autograd rounds: equal unless the exponential's last fp32 bit tips a
        # bf16 rounding, which these 20,000 values never do here.
        assert int((got != expected).sum()) <= 2
        torch.testing.assert_close(got, expected, rtol=2**-7, atol=1e-30)


def test_fp32_product_and_gradients_equal_eager_pytorch():
    gate, up = gate_and_up(torch.float32)
    grad = torch.randn(gate.shape, generator=torch.Generator().manual_seed(6))
    ours = product_and_grads(silu_gated, gate, up, grad)
    eager = product_and_grads(lambda g, u: F.silu(g) * u, gate, up, grad)
    for got, expected in zip(ours[:3], eager[:3], strict=True):
        # The sigmoid's last bit; dgate's (1 + g(1 - s)) cancels near g = -1.28.
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", ["float16", "shapes differ", "no kernel build"])
def test_other_tensors_take_the_eager_product(case, monkeypatch):
    gate, up = gate_and_up(torch.float16 if case == "float16" else torch.bfloat16, size=64)
    if case == "shapes differ":
        up = up[:1]
    if case == "no kernel build":
        monkeypatch.setattr(training_kernels, "load_training_kernels", lambda: None)
    out = silu_gated(gate.requires_grad_(True), up)
    assert "SwiGLU" not in out.grad_fn.name()
    assert torch.equal(out, F.silu(gate) * up)


def mlp(hidden_act):
    config = LlamaConfig(hidden_size=32, intermediate_size=80, hidden_act=hidden_act)
    torch.manual_seed(0)
    return LlamaMLP(config).to(torch.bfloat16)


def test_only_silu_mlps_are_rerouted_and_compute_the_same():
    silu, gelu = mlp("silu"), mlp("gelu")
    x = torch.randn(3, 9, 32, generator=torch.Generator().manual_seed(8)).to(torch.bfloat16)
    reference = silu(x)
    assert install_fused_swiglu(silu) == 1 and install_fused_swiglu(gelu) == 0
    out = silu(x)
    assert "SwiGLU" in graph_names(out.grad_fn) and "SwiGLU" not in graph_names(gelu(x).grad_fn)
    assert torch.equal(out, reference)


def graph_names(node, seen=None) -> str:
    seen = set() if seen is None else seen
    if node is None or node in seen:
        return ""
    seen.add(node)
    return node.name() + " " + " ".join(graph_names(n, seen) for n, _ in node.next_functions)
