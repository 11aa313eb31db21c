"""The fused RMSNorm computes what transformers' LlamaRMSNorm computes, and only where it may."""

import pytest
import torch
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from radreport.llm import training_kernels
from radreport.llm.fused_rms_norm import install_fused_rms_norm
from tests.llm.odd_llama import odd_llama


def norm(width=96, dtype=torch.bfloat16, trainable=False):
    module = LlamaRMSNorm(width, eps=1e-5)
    with torch.no_grad():
        module.weight.copy_(
            1 + 0.3 * torch.randn(width, generator=torch.Generator().manual_seed(1))
        )
    module = module.to(dtype)
    module.weight.requires_grad_(trainable)
    return module


def activations(*shape, dtype=torch.bfloat16, scale=3.0):
    x = scale * torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    return x.to(dtype).requires_grad_(True)


def output_and_input_grad(module, x, grad):
    x = x.detach().clone().requires_grad_(True)
    y = module(x)
    y.backward(grad)
    return y.detach(), x.grad, y.grad_fn.name() if y.grad_fn else None


def exact(module, x, grad):
    """fp64 arithmetic on the same bf16 values: what both paths approximate."""
    x64 = x.detach().double().requires_grad_(True)
    n = x64 * torch.rsqrt(x64.pow(2).mean(-1, keepdim=True) + module.variance_epsilon)
    y = module.weight.double() * n
    y.backward(grad.double())
    return y.detach(), x64.grad


def test_bf16_output_equals_the_module_and_gradients_are_as_accurate():
    module, x = norm(), activations(4, 37, 96)
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(3)).to(torch.bfloat16)
    reference = output_and_input_grad(module, x, grad)
    assert install_fused_rms_norm(module) == 1
    ours = output_and_input_grad(module, x, grad)
    assert "RMSNorm" in ours[2] and "RMSNorm" not in reference[2]
    # Only the row sum's order differs: at most a few outputs move by one bf16 step.
    differs = ours[0] != reference[0]
    assert int(differs.sum()) <= x.numel() // 1000
    step = reference[0].float().abs()[differs] * 2**-7
    assert bool(((ours[0].float() - reference[0].float()).abs()[differs] <= step).all())
    y64, dx64 = exact(module, x, grad)
    our_error = float((ours[1].double() - dx64).abs().max())
    their_error = float((reference[1].double() - dx64).abs().max())
    assert our_error <= 1.1 * their_error
    assert float((ours[0].double() - y64).abs().max()) <= 1.1 * float(
        (reference[0].double() - y64).abs().max()
    )


def test_fp32_output_and_gradient_equal_the_module():
    module, x = norm(dtype=torch.float32), activations(3, 11, 96, dtype=torch.float32)
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    reference = output_and_input_grad(module, x, grad)
    install_fused_rms_norm(module)
    ours = output_and_input_grad(module, x, grad)
    assert "RMSNorm" in ours[2]
    torch.testing.assert_close(ours[0], reference[0], rtol=2e-6, atol=1e-6)
    torch.testing.assert_close(ours[1], reference[1], rtol=2e-5, atol=1e-6)


def test_zero_rows_and_inference_mode():
    module = norm()
    install_fused_rms_norm(module)
    x = torch.zeros(2, 5, 96, dtype=torch.bfloat16)
    x[1] = activations(5, 96).detach()
    with torch.no_grad():
        ours = module(x)
    assert bool((ours[0] == 0).all())
    assert torch.equal(ours[1], LlamaRMSNorm.forward(module, x[1]))


@pytest.mark.parametrize("case", ["trainable weight", "float16", "mixed dtypes", "no kernel build"])
def test_other_cases_run_the_modules_own_forward(case, monkeypatch):
    module = norm(trainable=case == "trainable weight")
    x = activations(2, 7, 96)
    if case == "float16":
        module, x = module.half(), x.detach().half().requires_grad_(True)
    if case == "mixed dtypes":
        module = module.float()
    if case == "no kernel build":
        monkeypatch.setattr(training_kernels, "load_training_kernels", lambda: None)
    grad = torch.ones(x.shape, dtype=torch.float32 if case == "mixed dtypes" else x.dtype)
    reference = output_and_input_grad(module, x, grad)
    install_fused_rms_norm(module)
    ours = output_and_input_grad(module, x, grad)
    assert "RMSNorm" not in ours[2]
    assert torch.equal(ours[0], reference[0]) and torch.equal(ours[1], reference[1])
    if case == "trainable weight":
        assert module.weight.grad is not None


def test_a_llama_gets_every_norm_fused_and_keeps_its_state_dict():
    model = odd_llama(num_hidden_layers=3).to(torch.bfloat16).requires_grad_(False)
    keys = list(model.state_dict())
    assert install_fused_rms_norm(model) == 2 * 3 + 1
    assert list(model.state_dict()) == keys


def test_without_a_compiler_training_keeps_the_modules_and_says_why(monkeypatch, caplog):
    monkeypatch.setenv("CC", "no-such-compiler")
    training_kernels.load_training_kernels.cache_clear()
    try:
        with caplog.at_level("WARNING", logger=training_kernels.__name__):
            assert training_kernels.load_training_kernels() is None
        [record] = caplog.records
        assert "PyTorch's RMSNorm, MLP and head loss run instead" in record.getMessage()
        assert "'no-such-compiler' was not found" in record.getMessage()
        module, x = norm(), activations(2, 3, 96)
        install_fused_rms_norm(module)
        assert "RMSNorm" not in module(x).grad_fn.name()
    finally:
        training_kernels.load_training_kernels.cache_clear()
