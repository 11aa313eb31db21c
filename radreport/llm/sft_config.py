"""LLMSettings -> TRL SFTConfig, shared by both backends so they train the same way."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from trl import SFTConfig

from radreport.llm.settings import LLMSettings

logger = logging.getLogger(__name__)


def build_sft_config(
    settings: LLMSettings, output_dir: Path, report_to: Sequence[str], eval_on_start: bool
) -> SFTConfig:
    """Trainer arguments for resolved `settings` (no "auto" values left).

    The data arrive tokenized and masked (radreport.data.alpaca), so TRL's own dataset
    preparation is skipped and our collator builds the batches.
    """
    if settings.lr_scheduler == "constant" and settings.warmup_ratio > 0:
        # Said, not refused: model versions trained so stored these settings, and reloading
        # them must not fail.
        logger.warning(
            "lr_scheduler 'constant' has no warmup: warmup_ratio %s is ignored (use "
            "'constant_with_warmup' to warm up, or set warmup_ratio: 0)",
            settings.warmup_ratio,
        )
    on_cuda = torch.cuda.is_available()
    early_stopping = settings.early_stopping_patience is not None
    return SFTConfig(
        output_dir=str(output_dir),
        seed=settings.seed,
        data_seed=settings.seed,
        use_cpu=not on_cuda,
        bf16=settings.compute_dtype == "bfloat16",
        fp16=on_cuda and settings.compute_dtype == "float16",
        max_length=settings.max_seq_length,
        dataset_kwargs={"skip_prepare_dataset": True},
        remove_unused_columns=False,
        train_sampling_strategy=(
            "group_by_length" if settings.batching == "length_grouped" else "random"
        ),
        optim="adamw_torch",
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay,
        neftune_noise_alpha=settings.neftune_noise_alpha,
        lr_scheduler_type=settings.lr_scheduler,
        # transformers 5 reads a warmup_steps below 1 as a fraction of the training steps.
        warmup_steps=settings.warmup_ratio,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.per_device_batch_size,
        per_device_eval_batch_size=settings.per_device_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        # unsloth installs its own checkpointing in get_peft_model; the Trainer's would stack.
        gradient_checkpointing=settings.gradient_checkpointing and settings.backend == "hf",
        gradient_checkpointing_kwargs={"use_reentrant": False},
        eval_strategy="steps",
        eval_steps=settings.eval_steps,
        eval_on_start=eval_on_start,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit,
        load_best_model_at_end=early_stopping,
        metric_for_best_model="eval_loss" if early_stopping else None,
        greater_is_better=False if early_stopping else None,
        logging_steps=settings.logging_steps,
        report_to=list(report_to),
        dataloader_num_workers=0,
    )
