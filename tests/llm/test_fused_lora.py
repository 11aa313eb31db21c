"""The fused LoRA linear computes what PEFT's forward computes, and only where it may."""

import pytest
import torch
from peft import LoraConfig, get_peft_model

from radreport.llm.fused_lora import install_fused_lora


class TwoLinears(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.up = torch.nn.Linear(24, 40, bias=True)
        self.down = torch.nn.Linear(40, 24, bias=False)

    def forward(self, x):
        return self.down(torch.relu(self.up(x)))


def adapted(dtype=torch.float32, **lora_options):
    torch.manual_seed(0)
    model = TwoLinears().to(dtype)
    config = LoraConfig(r=4, lora_alpha=12, target_modules=["up", "down"], **lora_options)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():  # PEFT starts B at zero, which would hide errors in A's path
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.3)
    return peft_model


def outputs_and_grads(model, x, autocast_dtype=None):
    model.zero_grad()
    x = x.clone().requires_grad_(True)
    with torch.autocast(
        "cpu", dtype=autocast_dtype or torch.bfloat16, enabled=bool(autocast_dtype)
    ):
        y = model(x)
    y.float().pow(2).sum().backward()
    grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    return y.detach(), x.grad, grads, y.grad_fn.name()


def inputs(*shape, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(7)).to(dtype)


def assert_matches(ours, theirs, tolerance=1e-5):
    """Equal up to summation order: the largest difference relative to the largest value."""
    assert ours.shape == theirs.shape
    assert float((ours - theirs).abs().max()) <= tolerance * float(theirs.abs().max())


def test_fp32_outputs_and_gradients_equal_pefts():
    x = inputs(3, 5, 24)
    reference = outputs_and_grads(adapted(), x)
    fused_model = adapted()
    assert install_fused_lora(fused_model) == 2
    fused = outputs_and_grads(fused_model, x)
    assert "LoRALinear" in fused[3] and "LoRALinear" not in reference[3]
    assert_matches(fused[0], reference[0])
    assert_matches(fused[1], reference[1])
    assert len(fused[2]) == len(reference[2]) == 4  # A and B of both layers
    for ours, theirs in zip(fused[2], reference[2], strict=True):
        assert ours.dtype == torch.float32
        assert_matches(ours, theirs)


def test_bf16_base_under_autocast_is_as_accurate_as_pefts():
    """The training setup on CPUs with bf16: bf16 base, fp32 adapter, autocast. Both paths
    round differently, so each is measured against fp32 arithmetic on the same weights."""
    x = inputs(3, 5, 24, dtype=torch.bfloat16)

    def bf16_model():
        model = adapted(torch.bfloat16)
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.data = parameter.data.float()  # as prepare_training keeps them
        return model

    exact = adapted(torch.bfloat16).float()
    truth = outputs_and_grads(exact, x.float())
    reference = outputs_and_grads(bf16_model(), x, torch.bfloat16)
    fused_model = bf16_model()
    install_fused_lora(fused_model)
    fused = outputs_and_grads(fused_model, x, torch.bfloat16)
    assert fused[0].dtype == reference[0].dtype == torch.bfloat16
    assert fused[1].dtype == torch.bfloat16
    assert all(grad.dtype == torch.float32 for grad in fused[2])

    def error(tensor, true):
        return float((tensor.float() - true).norm() / true.norm())

    pairs = [(fused[0], reference[0], truth[0]), (fused[1], reference[1], truth[1])]
    pairs += list(zip(fused[2], reference[2], truth[2], strict=True))
    for ours, peft_s, true in pairs:
        assert error(ours, true) < 0.02
        assert error(ours, true) <= 1.5 * error(peft_s, true) + 1e-3


def test_no_input_gradient_is_computed_when_none_is_needed():
    model = adapted()
    install_fused_lora(model)
    x = inputs(2, 24)  # a frozen embedding's output: no grad
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize(
    "lora_options, training",
    [
        ({"lora_dropout": 0.1}, True),  # dropout draws a mask: PEFT's forward
        ({"use_dora": True}, True),
    ],
)
def test_layers_the_fused_path_does_not_cover_run_pefts_forward(lora_options, training):
    model = adapted(**lora_options)
    install_fused_lora(model)
    model.train(training)
    _, _, _, grad_fn = outputs_and_grads(model, inputs(2, 24))
    assert "LoRALinear" not in grad_fn


def test_dropout_layers_take_the_fused_path_in_eval_mode():
    model = adapted(lora_dropout=0.1)
    install_fused_lora(model)
    model.eval()
    _, _, _, grad_fn = outputs_and_grads(model, inputs(2, 24))
    assert "LoRALinear" in grad_fn


def test_disabled_and_merged_adapters_run_pefts_forward():
    model = adapted()
    install_fused_lora(model)
    x = inputs(2, 24)
    with model.disable_adapter():
        assert model(x).grad_fn is None  # only the frozen base ran
        assert_matches(model(x), model.get_base_model()(x), 0)
    expected = model(x).detach()
    model.merge_adapter()
    merged = model(x)
    assert merged.grad_fn is None or "LoRALinear" not in merged.grad_fn.name()
    assert_matches(merged.detach(), expected)


def test_a_trainable_base_layer_is_left_to_peft():
    model = adapted()
    model.base_model.model.up.base_layer.weight.requires_grad_(True)
    assert install_fused_lora(model) == 1
