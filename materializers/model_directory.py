"""Store a model or adapter directory in the artifact store file by file.

ZenML's own Path materializer packs directories into one tar.gz: safetensors do
not compress, so that costs time for nothing, and it would accept a folder of
pickled weights. This one copies the files as they are (config, tokenizer and
safetensors kept side by side, readable in the artifact store) and refuses
any file format that unpickles on load.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, ClassVar

from zenml.enums import ArtifactType
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
FILES_FOLDER = "files"


class PickledWeightsError(ValueError):
    """A model directory holds a file format that executes code when loaded."""


class ModelDirectoryMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (Path,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL
    # Chosen per output with `output_materializers`; other Path outputs keep ZenML's default.
    SKIP_REGISTRATION: ClassVar[bool] = True

    def save(self, data: Path) -> None:
        files = model_files(data)
        remote_root = os.path.join(self.uri, FILES_FOLDER)
        for relative in files:
            remote = os.path.join(remote_root, relative)
            fileio.makedirs(os.path.dirname(remote))
            fileio.copy(str(data / relative), remote, overwrite=True)

    def load(self, data_type: type[Any]) -> Path:
        remote_root = os.path.join(self.uri, FILES_FOLDER)
        copied = 0
        with self.get_temporary_directory(delete_at_exit=False) as local_root:
            for remote_dir, _, names in fileio.walk(remote_root):
                relative_dir = os.path.relpath(str(remote_dir), remote_root)
                os.makedirs(os.path.join(local_root, relative_dir), exist_ok=True)
                for name in names:
                    fileio.copy(
                        os.path.join(str(remote_dir), str(name)),
                        os.path.join(local_root, relative_dir, str(name)),
                    )
                    copied += 1
            if not copied:
                # Without this, a folder removed from the store loads as an empty directory
                # and fails far away, in whatever reads the model next.
                raise FileNotFoundError(f"the artifact's files are missing from {remote_root}")
            return Path(local_root)

    def extract_metadata(self, data: Path) -> dict[str, Any]:
        files = model_files(data)
        sizes = [(data / f).stat().st_size for f in files]
        return {
            "file_count": len(files),
            "size_mb": round(sum(sizes) / 2**20, 3),
            "safetensors_files": sum(f.endswith(".safetensors") for f in files),
        }

    def compute_content_hash(self, data: Path) -> str:
        digest = hashlib.sha256()
        for relative in model_files(data):
            digest.update(relative.encode())
            digest.update(hashlib.sha256((data / relative).read_bytes()).digest())
        return digest.hexdigest()


def model_files(directory: Path) -> list[str]:
    """Relative paths of every file to store; raises on a missing folder or pickled weights."""
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory}: a model artifact must be a directory")
    files = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
    pickled = [f for f in files if f.endswith(PICKLE_SUFFIXES)]
    if pickled:
        raise PickledWeightsError(
            f"{directory}: refusing pickled files {pickled[:3]}; save with safetensors"
        )
    if not any(f.endswith(".safetensors") for f in files):
        raise PickledWeightsError(f"{directory}: no .safetensors weights in the model directory")
    return files
