"""Where a base-model spec from config points: the bundled model, a local folder, or the hub."""

from __future__ import annotations

import json
from pathlib import Path

from radreport.llm.bundled import BUNDLED_NAME, bundled_model_dir

BUNDLED_PREFIX = "bundled:"
# A hub id ("org/name") never starts with these, so a spec that does is meant as a path.
PATH_PREFIXES = ("/", ".", "~")


# A tokenizer is one of these files (or file pairs) in a model folder.
_TOKENIZER_FILES = (
    ("tokenizer.json",),
    ("tokenizer.model",),
    ("vocab.json", "merges.txt"),
    ("vocab.txt",),
    ("spiece.model",),
    ("sentencepiece.bpe.model",),
)
_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "*.gguf")


class BaseModelMissing(FileNotFoundError):
    """A base-model folder named by a config or a model version is not there."""


def check_base_model(spec: str) -> None:
    """Raise what `resolve_base_model` or loading the model would for `spec`, without
    converting the bundled model or asking the hub, so a config is refused when it is
    loaded rather than minutes into a run: a missing folder, or one that is not a model
    (a LoRA adapter, no config.json, no weights, no tokenizer).

    A relative path is read from the current directory, as the run will read it (so is
    `data.manifest.path`).
    """
    if spec.startswith(BUNDLED_PREFIX):
        name = spec.removeprefix(BUNDLED_PREFIX)
        if name != BUNDLED_NAME:
            raise ValueError(f"Unknown bundled model {name!r}; available: {BUNDLED_NAME!r}")
        return
    folder = Path(spec).expanduser()
    if spec.startswith(PATH_PREFIXES) and not folder.is_dir():
        # Clearly meant as a path: a hub lookup would only hide the typo behind a 404.
        absolute = folder.absolute()
        where = "" if spec == str(absolute) else f" ({absolute})"
        raise BaseModelMissing(f"Base model folder {spec!r}{where} does not exist")
    if folder.is_dir():
        problem = _not_a_model(folder)
        if problem:
            raise ValueError(f"Base model folder {spec!r} {problem}")


def _not_a_model(folder: Path) -> str | None:
    if not (folder / "config.json").is_file():
        adapter_config = folder / "adapter_config.json"
        if adapter_config.is_file():
            try:
                base = json.loads(adapter_config.read_text()).get("base_model_name_or_path")
            except (OSError, ValueError):
                base = None
            names = f" (its adapter_config.json names {base!r})" if base else ""
            return (
                "is a LoRA adapter, not a model: set it to the model the adapter was "
                f"trained on{names}"
            )
        return "has no config.json: it is not a Hugging Face model folder"
    try:
        model_type = _config_model_type(folder)
    except ValueError:
        return "has a config.json that is not a JSON object"
    if not model_type:
        return "has a config.json without model_type: transformers cannot tell its architecture"
    if not any(next(folder.glob(pattern), None) for pattern in _WEIGHT_PATTERNS):
        return "holds no weights (*.safetensors, pytorch_model*.bin)"
    if not any(all((folder / name).is_file() for name in files) for files in _TOKENIZER_FILES):
        return (
            "holds no tokenizer (tokenizer.json, tokenizer.model, or vocab.json and "
            "merges.txt): copy the tokenizer files from the model's repository"
        )
    return None


def unknown_architecture(spec: str) -> str | None:
    """Why transformers cannot build the local folder's model, where its config.json names
    a model_type transformers does not know (a custom architecture, or a newer one than
    the pinned transformers); None otherwise. Imports transformers."""
    model_type = local_model_type(spec)
    if model_type is None:
        return None
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    if model_type in CONFIG_MAPPING_NAMES:
        return None
    from transformers import __version__

    return (
        f"Base model folder {spec!r} is a {model_type!r} model, an architecture transformers "
        f"{__version__} does not know (custom code, or newer than this transformers)"
    )


def local_model_type(spec: str) -> str | None:
    """The model_type in a local base-model folder's config.json; None for a hub id or the
    bundled model (a Llama), and where it cannot be read."""
    folder = Path(spec).expanduser()
    if spec.startswith(BUNDLED_PREFIX) or not (folder / "config.json").is_file():
        return None
    try:
        return _config_model_type(folder)
    except ValueError:
        return None


def _config_model_type(folder: Path) -> str | None:
    """The model_type of `folder`'s config.json; ValueError where it is not a readable JSON
    object."""
    try:
        return json.loads((folder / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError) as error:
        raise ValueError(f"{folder / 'config.json'}: not a readable JSON object") from error


def resolve_base_model(spec: str) -> str:
    """A path or hub id that `from_pretrained` accepts.

    - "bundled:smollm2-135m-instruct" -> the converted folder in the cache (offline);
    - an existing local folder -> that folder (a missing one that is clearly a path raises);
    - anything else -> returned as a Hugging Face hub id (downloaded by the loader).
    """
    check_base_model(spec)
    if spec.startswith(BUNDLED_PREFIX):
        return str(bundled_model_dir())
    local = Path(spec).expanduser()
    return str(local) if local.is_dir() else spec
