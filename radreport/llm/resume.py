"""Resume a fine-tuning run from its last checkpoint, but only the same run.

A run is identified by a fingerprint of the resolved settings, of the training and
validation data, and of the project code that trains (radreport.source_digest). Resuming
with a changed config, dataset or training code would silently mix two runs (or hand back
the adapter the old code finished), so a different fingerprint clears the old checkpoints
and starts fresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from safetensors import safe_open

from radreport.llm.base_model_content import base_model_content
from radreport.llm.settings import LLMSettings
from radreport.source_digest import source_digest

logger = logging.getLogger(__name__)

FINGERPRINT_FILE = "run_fingerprint.json"
# Fields that change neither the trained weights nor the optimisation path.
_NOT_FINGERPRINTED = {
    "max_new_tokens",
    "num_beams",
    "retrieval_k",
    "retrieval_match",
    "num_threads",
    "eval_samples",
    "eval_sample_max_new_tokens",
    "no_repeat_ngram_size",
    "stop_logit_bias",
    "stop_bias_calibration_studies",
    "stop_bias_calibration_step",
    "stop_bias_calibration_max_tries",
    "mbr_candidates",
    "mbr_epsilon",
    "mbr_example_references",
    "mbr_impression_weight",
    "decoder",
    # Recomputing activations gives the same values (tests/llm/test_resume.py), and `auto`
    # decides it by the memory free when the run starts (radreport.llm.training_memory):
    # a run restarted while other processes hold memory resumes all the same.
    "gradient_checkpointing",
}
_CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")
# The Trainer writes this last of a checkpoint's files; without it the save was cut short.
_CHECKPOINT_COMPLETE_MARKER = "trainer_state.json"
_OPTIMIZATION_STATE = ("optimizer.pt", "scheduler.pt")
ADAPTER_DIR_NAME = "adapter"  # where the finished run's adapter is written
# The module whose code (with all it imports of the project) trains a run, but for the
# validation reports written at each evaluation: they are logged, never trained on, and a
# change in decoding need not train a model again.
_TRAINING_CODE = "radreport.llm.finetune"
_NOT_TRAINING_CODE = ("radreport.llm.sample_generations",)


def fingerprint_parts(
    settings: LLMSettings, train_rows: Iterable[Mapping], val_rows: Iterable[Mapping]
) -> dict[str, str]:
    """A digest of each thing that identifies a run, by what a user would call it: stored
    with its checkpoints, so that a run started over can say what changed."""
    data = hashlib.sha256()
    for split, rows in (("train", train_rows), ("val", val_rows)):
        data.update(split.encode())
        for row in rows:
            data.update(json.dumps(row, sort_keys=True, default=str).encode())
    config = settings.model_dump(exclude=_NOT_FINGERPRINTED)
    return {
        "training code": source_digest(_TRAINING_CODE, _NOT_TRAINING_CODE),
        # The base model's files, not only its path: new weights copied over a folder's
        # old ones must not restore the old run's adapter.
        "base model files": base_model_content(settings.base_model),
        "settings": hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest(),
        "data": data.hexdigest(),
    }


def fingerprint_of(parts: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(dict(parts), sort_keys=True).encode()).hexdigest()


def run_fingerprint(
    settings: LLMSettings, train_rows: Iterable[Mapping], val_rows: Iterable[Mapping]
) -> str:
    return fingerprint_of(fingerprint_parts(settings, train_rows, val_rows))


def what_changed(run_dir: Path, parts: Mapping[str, str] | None) -> str:
    """What differs between the run stored in `run_dir` and the one of `parts`, in words:
    "training code" after an update of radreport, "settings", "data", ..."""
    try:
        stored = json.loads((run_dir / FINGERPRINT_FILE).read_text()).get("parts")
    except (OSError, ValueError, AttributeError):
        stored = None
    if not isinstance(stored, dict) or parts is None:
        return "settings, data or training code"
    changed = [name for name, digest in parts.items() if stored.get(name) != digest]
    return " and ".join(changed) or "settings, data or training code"


def _checkpoint_problem(checkpoint: Path) -> str | None:
    """Why the checkpoint cannot be resumed from, or None. A kill mid-save (its state file
    written last, but not atomically), a copy or a hand that deleted files can each leave
    one that the Trainer would fail on at every rerun, or, without its optimizer and
    scheduler, resume on a restarted learning-rate schedule without a word."""
    try:
        json.loads((checkpoint / _CHECKPOINT_COMPLETE_MARKER).read_text())
    except (OSError, ValueError):
        return f"{_CHECKPOINT_COMPLETE_MARKER} is not readable JSON"
    weights = sorted(checkpoint.glob("*.safetensors"))
    if not weights:
        return "no safetensors weights"
    for path in weights:
        try:
            with safe_open(path, framework="pt"):
                pass
        except Exception:  # safetensors raises its own error type for a bad header
            return f"{path.name} is not readable safetensors"
    for name in _OPTIMIZATION_STATE:
        if not (checkpoint / name).is_file() or (checkpoint / name).stat().st_size == 0:
            return f"{name} is missing or empty"
    return None


def checkpoint_dirs(output_dir: Path) -> list[Path]:
    """Complete checkpoints in `output_dir`, oldest step first."""
    found = []
    for path in output_dir.glob("checkpoint-*"):
        match = _CHECKPOINT_DIR.match(path.name)
        if match and (path / _CHECKPOINT_COMPLETE_MARKER).is_file():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def checkpoint_step(checkpoint: Path) -> int:
    return int(_CHECKPOINT_DIR.match(checkpoint.name).group(1))


def _stored_fingerprint(path: Path) -> str | None:
    try:
        return json.loads(path.read_text())["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        logger.warning("%s is not readable: starting fresh", path)
        return None


def _newest_usable(checkpoints: list[Path]) -> Path | None:
    """The newest checkpoint that can be resumed from; newer ones that cannot are removed,
    so that the run saves them again instead of tripping on them."""
    for checkpoint in reversed(checkpoints):
        problem = _checkpoint_problem(checkpoint)
        if problem is None:
            return checkpoint
        logger.warning("Removing %s, which cannot be resumed from: %s", checkpoint, problem)
        shutil.rmtree(checkpoint)
    return None


def prepare_output_dir(
    output_dir: Path, fingerprint: str, parts: Mapping[str, str] | None = None
) -> Path | None:
    """The newest usable checkpoint to resume from, or None for a fresh start (old state
    cleared: checkpoints and the last adapter). `parts` (fingerprint_parts) are stored
    with the fingerprint."""
    output_dir.mkdir(parents=True, exist_ok=True)
    fingerprint_path = output_dir / FINGERPRINT_FILE
    if fingerprint_path.is_file():
        stored = _stored_fingerprint(fingerprint_path)
        if stored == fingerprint:
            checkpoint = _newest_usable(checkpoint_dirs(output_dir))
            if checkpoint is not None:
                logger.info(
                    "Same config and data as the run in %s: resuming from %s",
                    output_dir,
                    checkpoint.name,
                )
            return checkpoint
        if stored is not None:
            logger.warning(
                "Other %s than the run in %s: starting fresh",
                what_changed(output_dir, parts),
                output_dir,
            )
    for stale in [*output_dir.glob("checkpoint-*"), output_dir / ADAPTER_DIR_NAME]:
        if stale.is_dir():
            shutil.rmtree(stale)
    fingerprint_path.write_text(json.dumps({"fingerprint": fingerprint, "parts": parts}))
    return None


def training_finished(checkpoint: Path) -> bool:
    """Whether the run ended at this checkpoint: its last step, or an early stop. Resumed
    from such a checkpoint, the Trainer would still take a step (and after an early stop
    train on to max_steps), so the run is restored from it instead."""
    state = json.loads((checkpoint / _CHECKPOINT_COMPLETE_MARKER).read_text())
    control = state.get("stateful_callbacks", {}).get("TrainerControl", {}).get("args", {})
    return state["global_step"] >= state["max_steps"] or bool(control.get("should_training_stop"))
