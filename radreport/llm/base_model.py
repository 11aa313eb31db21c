"""Where a base-model spec from config points: the bundled model, a local folder, or the hub."""

from __future__ import annotations

from pathlib import Path

from radreport.llm.bundled import BUNDLED_NAME, bundled_model_dir

BUNDLED_PREFIX = "bundled:"
# A hub id ("org/name") never starts with these, so a spec that does is meant as a path.
PATH_PREFIXES = ("/", ".", "~")


def check_base_model(spec: str) -> None:
    """Raise what `resolve_base_model` would for `spec`, without converting the bundled model
    or asking the hub, so a config is refused when it is loaded rather than minutes into a run.

    A relative path is read from the current directory, as the run will read it (so is
    `data.manifest.path`).
    """
    if spec.startswith(BUNDLED_PREFIX):
        name = spec.removeprefix(BUNDLED_PREFIX)
        if name != BUNDLED_NAME:
            raise ValueError(f"Unknown bundled model {name!r}; available: {BUNDLED_NAME!r}")
    elif spec.startswith(PATH_PREFIXES) and not Path(spec).expanduser().is_dir():
        # Clearly meant as a path: a hub lookup would only hide the typo behind a 404.
        absolute = Path(spec).expanduser().absolute()
        where = "" if spec == str(absolute) else f" ({absolute})"
        raise FileNotFoundError(f"Base model folder {spec!r}{where} does not exist")


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
