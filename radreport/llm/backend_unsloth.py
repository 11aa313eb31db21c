"""The talk's backend: unsloth's FastLanguageModel (4-bit load, LoRA, its gradient checkpointing).

unsloth patches transformers, peft and TRL when imported and prints a banner, so only
radreport.llm.finetune imports this module, when a run picks this backend, and before it
loads transformers itself. The rest of the project imports without unsloth.
"""

from __future__ import annotations

import torch
import unsloth  # noqa: F401  (first: patches transformers, peft and TRL)
from unsloth import FastLanguageModel

from radreport.llm.base_model import resolve_base_model
from radreport.llm.lora_targets import check_lora_targets
from radreport.llm.quantized_cpu_training import keep_4bit_layers_differentiable
from radreport.llm.settings import LLMSettings


def load_model(settings: LLMSettings):
    """(PEFT model with fresh LoRA adapters, tokenizer) for resolved `settings`."""
    model, tokenizer = FastLanguageModel.from_pretrained(
        resolve_base_model(settings.base_model),
        max_seq_length=settings.max_seq_length,
        load_in_4bit=settings.load_in_4bit,
        dtype=getattr(torch, settings.compute_dtype),
    )
    keep_4bit_layers_differentiable(model)
    check_lora_targets(model, settings.target_modules)
    model = FastLanguageModel.get_peft_model(
        model,
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=list(settings.target_modules),
        use_gradient_checkpointing="unsloth" if settings.gradient_checkpointing else False,
        random_state=settings.seed,
    )
    return model, tokenizer


def trainer_class() -> type:
    """TRL's SFTTrainer as unsloth patched it (its loss also runs on CPU), with
    length-grouped batches in an order a resumed run repeats, a validation loss that
    weighs every labelled token alike and a warmup that leaves the last step at least."""
    from trl import SFTTrainer

    from radreport.llm.length_grouped_order import SeededLengthGroupedOrder
    from radreport.llm.token_weighted_eval_loss import TokenWeightedEvalLoss
    from radreport.llm.warmup_before_last_step import WarmupBeforeLastStep

    class UnslothSFTTrainer(
        TokenWeightedEvalLoss, SeededLengthGroupedOrder, WarmupBeforeLastStep, SFTTrainer
    ):
        pass

    return UnslothSFTTrainer


def trainer_options(settings: LLMSettings) -> dict:
    """Keyword arguments of trainer_class() that come from the settings: none."""
    return {}
