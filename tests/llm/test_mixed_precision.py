"""The hf backend trains in the asked precision: bf16 products over fp32 adapter weights."""

from __future__ import annotations

import pytest
import torch

from radreport.llm.finetune import prepare_training
from radreport.llm.settings import LLMSettings
from tests.llm.tiny_training import ROWS, tiny_settings


@pytest.mark.parametrize("fused_lora", [True, False])
@pytest.mark.parametrize("compute_dtype", ["bfloat16", "float32"])
def test_adapter_products_run_in_the_compute_dtype(
    tiny_llama_dir, tmp_path, compute_dtype, fused_lora
):
    settings = LLMSettings(
        **tiny_settings(
            tiny_llama_dir,
            compute_dtype=compute_dtype,
            fused_lora=fused_lora,
            max_steps=2,
            eval_samples=0,
        )
    )
    run = prepare_training(ROWS, ROWS[:4], settings, tmp_path / "run")
    modules = dict(run.trainer.model.named_modules())
    q_proj = next(module for name, module in modules.items() if name.endswith("0.self_attn.q_proj"))
    lora_a = q_proj.lora_A["default"]
    seen, seen_by_peft = [], []
    q_proj.register_forward_hook(
        lambda module, args, output: seen.append(
            (args[0].dtype, output.dtype, output.grad_fn and output.grad_fn.name())
        )
    )
    lora_a.register_forward_hook(
        lambda module, args, output: seen_by_peft.append((args[0].dtype, output.dtype))
    )
    run.trainer.train()

    expected = getattr(torch, compute_dtype)
    # Training steps and evaluations alike (the validation loss before training included);
    # with bf16 the layer reads its bf16 input as it is, without PEFT's fp32 copy.
    assert len(seen) >= 2 * 2  # the first layer: 2 training steps, 2 evaluations
    assert {dtypes[:2] for dtypes in seen} == {(expected, expected)}
    trained_through = {dtypes[2] for dtypes in seen} - {None}  # evaluations build no graph
    if fused_lora:
        assert trained_through == {"_LoRALinearBackward"} and not seen_by_peft
    else:
        assert "_LoRALinearBackward" not in trained_through
        assert set(seen_by_peft) == {(expected, expected)}
    # The optimizer still updates fp32 adapter weights.
    assert lora_a.weight.dtype == torch.float32
