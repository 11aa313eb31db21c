"""What a base model is, by content: a digest of its files, so a run keys its training on
the model's weights and tokenizer, not on the folder's name.

A local folder whose files were replaced by another model (a new revision copied over the
old one) keeps its path; keyed by the path alone, a retrain restored the old run's adapter
and ZenML served every step from its cache, and `generate` decoded with an adapter trained
on other weights, without a word. Files are hashed once and remembered by their status
(radreport.llm.file_digests), so a start with unchanged files rereads none. The bundled
model is its GGUF file; a hub id is its name, all that is known of it offline.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from radreport.llm.base_model import BUNDLED_PREFIX, PATH_PREFIXES, BaseModelMissing
from radreport.llm.bundled import bundled_gguf_path
from radreport.llm.file_digests import FileDigests, shared_file_digests

# The model version's metadata key that keeps the digest of the base it was trained on.
BASE_MODEL_CONTENT_KEY = "base_model_content"


def base_model_content(spec: str, digests: FileDigests | None = None) -> str:
    """Hex SHA-256 of the model `spec` names (LLMSettings.base_model): of every file in a
    local folder (names and contents; hidden files and folders left out), of the bundled
    model's GGUF, or of a hub id's name."""
    digests = digests or shared_file_digests()
    digest = hashlib.sha256()
    folder = Path(spec).expanduser()
    if spec.startswith(BUNDLED_PREFIX):
        gguf = bundled_gguf_path()
        digest.update(f"{spec} {gguf.name} {digests.sha256(gguf)}".encode())
    elif folder.is_dir():
        for path in _model_files(folder):
            digest.update(str(path.relative_to(folder)).encode() + b"\0")
            digest.update(digests.sha256(path).encode())
    elif spec.startswith(PATH_PREFIXES):
        raise BaseModelMissing(f"Base model folder {spec!r} does not exist")
    else:
        digest.update(f"hub:{spec}".encode())
    return digest.hexdigest()


def base_model_change(recorded: str | None, spec: str) -> str | None:
    """What changed where a model version's recorded digest of its base model differs from
    the files there now; None where they match, nothing was recorded (versions trained
    before the digest was kept), or the base cannot be read (its own error says why)."""
    if not recorded:
        return None
    try:
        current = base_model_content(spec)
    except OSError:
        return None
    if current == recorded:
        return None
    return (
        f"the files of its base model {spec!r} have changed since it was trained (content "
        f"{recorded[:12]} then, {current[:12]} now): its adapter was trained on other weights; "
        "train it again on these"
    )


def _model_files(folder: Path) -> list[Path]:
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )
