"""A 4-bit base still passes gradients through its frozen weights after an evaluation.

bitsandbytes repacks 4-bit weights for inference on CPUs with AVX-512 BF16 at the first
forward in eval mode, and its packed kernel has no backward. These tests fail without
radreport.llm.quantized_cpu_training on such CPUs (checked on an AMD EPYC with AVX-512 BF16);
on CPUs without AVX-512 BF16 bitsandbytes never repacks, and they hold either way.
"""

from __future__ import annotations

import pytest
import torch

from radreport.llm.quantized_cpu_training import keep_4bit_layers_differentiable

bnb = pytest.importorskip("bitsandbytes")


def _quantized_layer() -> torch.nn.Module:
    torch.manual_seed(0)
    layer = bnb.nn.Linear4bit(64, 96, bias=False, compute_dtype=torch.bfloat16, quant_type="nf4")
    layer.weight = bnb.nn.Params4bit(
        torch.randn(96, 64) * 0.1, requires_grad=False, quant_type="nf4"
    )
    return layer.to("cpu")


def _input_gradient_after_an_evaluation(layer: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    layer.eval()
    with torch.no_grad():
        layer(x)
    layer.train()
    x = x.clone().requires_grad_()
    layer(x).float().sum().backward()
    assert x.grad is not None, "no gradient reached the layer's input"
    return x.grad


def test_a_4bit_layer_passes_its_input_gradient_after_an_evaluation():
    layer = _quantized_layer()
    keep_4bit_layers_differentiable(layer)
    x = torch.randn(5, 64, dtype=torch.bfloat16)
    grad = _input_gradient_after_an_evaluation(layer, x)
    weight = bnb.functional.dequantize_4bit(layer.weight.data, layer.weight.quant_state)
    # d(sum(x W^T))/dx is the column sums of W, for every row of x.
    expected = weight.to(torch.bfloat16).float().sum(dim=0).expand(5, -1)
    torch.testing.assert_close(grad.float(), expected, rtol=2e-2, atol=2e-2)


def _adapter_gradients(model_dir, evaluate_first: bool) -> dict[str, torch.Tensor]:
    from radreport.llm import backend_hf
    from radreport.llm.device import resolve_for_device
    from radreport.llm.settings import LLMSettings

    settings = resolve_for_device(
        LLMSettings(
            base_model=str(model_dir), backend="hf", load_in_4bit=True, compute_dtype="bfloat16"
        )
    )
    torch.manual_seed(0)
    model, _ = backend_hf.load_model(settings)
    with torch.no_grad():  # B starts at zero, which would hide what flows through A
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.1)
    ids = torch.tensor([[1, 5, 9, 14, 3, 7, 2, 11]])
    if evaluate_first:  # as the Trainer's evaluation before the first step
        model.eval()
        with torch.no_grad():
            model(input_ids=ids)
    model.train()
    model(input_ids=ids, labels=ids).loss.backward()
    return {
        name: parameter.grad.clone()
        for name, parameter in model.named_parameters()
        if parameter.requires_grad
    }


def test_the_hf_backend_trains_a_4bit_base_the_same_after_an_evaluation(tiny_llama_dir):
    fresh = _adapter_gradients(tiny_llama_dir, evaluate_first=False)
    evaluated = _adapter_gradients(tiny_llama_dir, evaluate_first=True)
    assert fresh.keys() == evaluated.keys() and fresh
    for name, grad in fresh.items():
        torch.testing.assert_close(evaluated[name], grad, msg=name)
