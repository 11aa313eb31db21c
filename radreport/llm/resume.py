"""Resume a fine-tuning run from its last checkpoint, but only the same run.

A run is identified by a fingerprint of the resolved settings and of the training and
validation data. Resuming with a changed config or dataset would silently mix two runs, so
a different fingerprint clears the old checkpoints and starts fresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from radreport.llm.settings import LLMSettings

logger = logging.getLogger(__name__)

FINGERPRINT_FILE = "run_fingerprint.json"
# Fields that change neither the trained weights nor the optimisation path.
_NOT_FINGERPRINTED = {
    "max_new_tokens",
    "num_beams",
    "retrieval_k",
    "num_threads",
    "eval_samples",
    "eval_sample_max_new_tokens",
    "no_repeat_ngram_size",
    "stop_logit_bias",
    "mbr_candidates",
    "mbr_epsilon",
    "mbr_example_references",
    "decoder",
}
_CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")
# The Trainer writes this last of a checkpoint's files; without it the save was cut short.
_CHECKPOINT_COMPLETE_MARKER = "trainer_state.json"


def run_fingerprint(
    settings: LLMSettings, train_rows: Iterable[Mapping], val_rows: Iterable[Mapping]
) -> str:
    digest = hashlib.sha256()
    config = settings.model_dump(exclude=_NOT_FINGERPRINTED)
    digest.update(json.dumps(config, sort_keys=True).encode())
    for split, rows in (("train", train_rows), ("val", val_rows)):
        digest.update(split.encode())
        for row in rows:
            digest.update(json.dumps(row, sort_keys=True, default=str).encode())
    return digest.hexdigest()


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


def prepare_output_dir(output_dir: Path, fingerprint: str) -> Path | None:
    """The checkpoint to resume from, or None for a fresh start (old state cleared)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    fingerprint_path = output_dir / FINGERPRINT_FILE
    if fingerprint_path.is_file():
        stored = json.loads(fingerprint_path.read_text())["fingerprint"]
        if stored == fingerprint:
            checkpoints = checkpoint_dirs(output_dir)
            return checkpoints[-1] if checkpoints else None
        logger.warning("Config or data changed since the run in %s: starting fresh", output_dir)
    for stale in output_dir.glob("checkpoint-*"):
        shutil.rmtree(stale)
    fingerprint_path.write_text(json.dumps({"fingerprint": fingerprint}))
    return None
