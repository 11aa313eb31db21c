"""Whether a base model named by its Hugging Face hub id can be had, asked before a run
starts: a machine without the hub (a hospital network) otherwise learns it after the data
steps, from transformers' retries (63 s on ours), and a gated model after its licence was
never accepted, the same way.

A model already in the local Hugging Face cache needs no network. Otherwise one request to
the hub, with a short timeout, says whether it answers for the model.
"""

from __future__ import annotations

from pathlib import Path

from radreport.llm.base_model import BUNDLED_PREFIX

HUB_TIMEOUT_SECONDS = 10


def hub_model_problem(spec: str) -> str | None:
    """Why a run could not download the hub model `spec`; None where it is cached, the hub
    answers for it, or `spec` is the bundled model or a local folder."""
    if spec.startswith(BUNDLED_PREFIX) or Path(spec).expanduser().is_dir():
        return None
    from huggingface_hub import constants, model_info, try_to_load_from_cache
    from huggingface_hub.errors import GatedRepoError, OfflineModeIsEnabled, RepositoryNotFoundError

    if isinstance(try_to_load_from_cache(spec, "config.json"), str):
        return None
    try:
        model_info(spec, timeout=HUB_TIMEOUT_SECONDS)
    except GatedRepoError:
        return (
            f"{spec!r} is gated on the Hugging Face hub: accept its licence on its page and "
            "log in (`hf auth login`, or set HF_TOKEN)"
        )
    except RepositoryNotFoundError:
        return (
            f"{spec!r} is no model on the Hugging Face hub (or a private one not shared with you)"
        )
    except OfflineModeIsEnabled:
        return (
            f"{spec!r} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and "
            "HF_HUB_OFFLINE is set: download it where there is network, or set it to a local "
            "folder"
        )
    except Exception as error:  # no route, no name service, a proxy's refusal, a timeout
        return (
            f"{spec!r} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and the hub "
            f"cannot be reached ({type(error).__name__}): download it where there is network, "
            "or set it to a local folder"
        )
    return None
