import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from zenml import pipeline, step
from zenml.client import Client

from materializers.model_directory import (
    ModelDirectoryMaterializer,
    PickledWeightsError,
    model_files,
)


def write_model_folder(root: Path) -> Path:
    (root / "tokenizer").mkdir(parents=True)
    save_file({"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}, root / "model.safetensors")
    (root / "config.json").write_text('{"hidden_size": 3}')
    (root / "tokenizer" / "tokenizer.json").write_text('{"version": "1.0"}')
    return root


@step(output_materializers=ModelDirectoryMaterializer, enable_cache=False)
def emit_model_folder(folder: str) -> Path:
    return Path(folder)


@pipeline(enable_cache=False)
def model_folder_roundtrip(folder: str) -> None:
    emit_model_folder(folder)


def test_model_folder_roundtrips_through_artifact_store(radreport_stack, tmp_path):
    source = write_model_folder(tmp_path / "model")
    run = model_folder_roundtrip(folder=str(source))
    artifact = run.steps["emit_model_folder"].outputs["output"][0]
    loaded = artifact.load()
    assert model_files(loaded) == model_files(source)
    for relative in model_files(source):
        assert (loaded / relative).read_bytes() == (source / relative).read_bytes()
    stored = Client().get_artifact_version(artifact.id)
    assert stored.run_metadata["safetensors_files"] == 1
    assert not any(Path(stored.uri).rglob("*.tar.gz"))


def test_pickled_weights_are_refused(tmp_path):
    folder = write_model_folder(tmp_path / "model")
    torch.save({"w": torch.zeros(1)}, folder / "pytorch_model.bin")
    with pytest.raises(PickledWeightsError, match="pytorch_model.bin"):
        model_files(folder)


def test_folder_without_safetensors_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(PickledWeightsError, match="no .safetensors"):
        model_files(tmp_path)


def test_a_stored_folder_deleted_from_the_store_fails_to_load_by_name(radreport_stack, tmp_path):
    run = model_folder_roundtrip(folder=str(write_model_folder(tmp_path / "model")))
    artifact = run.steps["emit_model_folder"].outputs["output"][0]
    shutil.rmtree(Path(Client().get_artifact_version(artifact.id).uri) / "files")
    with pytest.raises(FileNotFoundError, match="files are missing from"):
        artifact.load()
