"""The hf backend's trainer loss: the causal-LM loss over labelled tokens, exactly."""

import pytest
import torch
from peft.tuners.lora import Linear as LoraLinear
from transformers.models.llama.modeling_llama import LlamaMLP, LlamaRMSNorm

from radreport.llm.backend_hf import _without_right_padding_mask
from radreport.llm.finetune import prepare_training
from radreport.llm.settings import LLMSettings
from tests.llm.tiny_training import ROWS, tiny_settings


@pytest.mark.parametrize("attention", ["eager", "sdpa", "grouped_eager_or_sdpa"])
def test_trainer_loss_and_gradients_equal_the_models_own_loss(tiny_llama_dir, tmp_path, attention):
    """The hf backend's loss (backbone with fused LoRA layers, RMSNorms and MLP products, then
    the chunked head on labelled positions) is the causal-LM loss transformers computes from
    the full logits through PEFT's and transformers' own forwards, gradients included."""
    settings = LLMSettings(
        **tiny_settings(tiny_llama_dir, compute_dtype="float32", attention=attention)
    )
    run = prepare_training(ROWS, ROWS[:4], settings, tmp_path / "run")
    model = run.trainer.model
    fused_layers = [
        m for m in model.modules() if isinstance(m, LoraLinear) and "forward" in vars(m)
    ]
    assert len(fused_layers) == 2 * 7  # every projection of both layers
    rerouted = [
        m
        for m in model.modules()
        if isinstance(m, LoraLinear | LlamaRMSNorm | LlamaMLP) and "forward" in vars(m)
    ]
    assert len(rerouted) == 2 * 7 + 2 * 2 + 1 + 2  # projections, norms, final norm, MLPs
    with torch.no_grad():  # PEFT starts B at zero, which would hide errors in A's path
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.2, generator=torch.Generator().manual_seed(3))
    batch = next(iter(run.trainer.get_train_dataloader()))
    assert (batch["labels"] == -100).any() and (batch["labels"] != -100).any()
    # Right padding: the trainer drops the mask, the reference below applies it.
    assert (batch["attention_mask"] == 0).any()

    def loss_and_gradients(compute):
        model.zero_grad()
        loss = compute()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    ours, our_grads = loss_and_gradients(lambda: run.trainer.compute_loss(model, batch))
    for module in rerouted:
        del module.forward  # back to PEFT's and transformers' class forwards for the reference
    reference, reference_grads = loss_and_gradients(lambda: model(**batch).loss)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    for grad, reference_grad in zip(our_grads, reference_grads, strict=True):
        torch.testing.assert_close(grad, reference_grad, rtol=1e-4, atol=1e-6)


def test_only_a_right_padding_mask_is_dropped():
    ids = torch.zeros(2, 4, dtype=torch.long)
    right = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    assert "attention_mask" not in _without_right_padding_mask(
        {"input_ids": ids, "attention_mask": right}
    )
    left = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])
    assert (
        _without_right_padding_mask({"input_ids": ids, "attention_mask": left})["attention_mask"]
        is left
    )
    packed = {"input_ids": ids, "attention_mask": right, "position_ids": ids}
    assert "attention_mask" in _without_right_padding_mask(packed)


@pytest.mark.parametrize("fused", [True, False])
def test_fused_elementwise_setting_reaches_the_head_loss(tiny_llama_dir, tmp_path, fused):
    settings = LLMSettings(**tiny_settings(tiny_llama_dir, fused_elementwise=fused))
    run = prepare_training(ROWS, ROWS[:4], settings, tmp_path / "run")
    assert run.trainer.fused_head_loss is fused
