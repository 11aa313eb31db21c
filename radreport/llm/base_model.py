"""Where a base-model spec from config points: the bundled model, a local folder, or the hub."""

from __future__ import annotations

from pathlib import Path

from radreport.llm.bundled import BUNDLED_NAME, bundled_model_dir

BUNDLED_PREFIX = "bundled:"


def resolve_base_model(spec: str) -> str:
    """A path or hub id that `from_pretrained` accepts.

    - "bundled:smollm2-135m-instruct" -> the converted folder in the cache (offline);
    - an existing local folder -> that folder (a missing one that is clearly a path raises);
    - anything else -> returned as a Hugging Face hub id (downloaded by the loader).
    """
    if spec.startswith(BUNDLED_PREFIX):
        name = spec.removeprefix(BUNDLED_PREFIX)
        if name != BUNDLED_NAME:
            raise ValueError(f"Unknown bundled model {name!r}; available: {BUNDLED_NAME!r}")
        return str(bundled_model_dir())
    local = Path(spec).expanduser()
    if local.is_dir():
        return str(local)
    if spec.startswith(("/", ".", "~")):
        # Clearly meant as a path: a hub lookup would only hide the typo behind a 404.
        raise FileNotFoundError(f"Base model folder {spec!r} does not exist")
    return spec
