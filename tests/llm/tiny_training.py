"""Shared inputs of the tiny fine-tuning tests: a few report pairs and fast settings."""

from __future__ import annotations

from pathlib import Path

FINDINGS = [
    ("No acute disease.", "The heart is normal in size. The lungs are clear."),
    ("Cardiomegaly.", "The heart is enlarged. The lungs are clear. No effusion."),
    ("Small left effusion.", "There is a small left pleural effusion. No pneumothorax."),
    ("Right lower lobe pneumonia.", "Airspace opacity in the right lower lobe. Heart normal."),
]
ROWS = [
    {"impression": impression, "report": report}
    for _ in range(4)
    for impression, report in FINDINGS
]


def tiny_settings(model_dir: Path, **overrides) -> dict:
    """LLMSettings fields for a few-second run of the tiny random Llama on CPU."""
    return {
        "base_model": str(model_dir),
        "backend": "hf",
        "max_seq_length": 128,
        "lora_r": 4,
        "lora_alpha": 8,
        "learning_rate": 5e-3,
        "warmup_ratio": 0.0,
        "per_device_batch_size": 4,
        "max_steps": 4,
        "eval_steps": 2,
        "save_steps": 2,
        "logging_steps": 1,
        "early_stopping_patience": 3,
        "num_threads": 1,
        **overrides,
    }
