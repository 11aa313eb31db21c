"""The LoRA target names of the settings, checked against the model they will adapt.

peft matches each name against the end of the model's module paths and says nothing of a
name that matches none while another does: a misspelt `gate_prj` beside `q_proj` trained
without the MLP, and its adapter's config still listed `gate_prj`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def check_lora_targets(model, targets: Sequence[str]) -> None:
    """ValueError naming `llm.target_modules` for a name that matches no module of `model`,
    or that names the input embedding of a model whose output head shares its weights."""
    paths = {path: module for path, module in model.named_modules() if path}
    missing = [
        target
        for target in targets
        if not any(path == target or path.endswith("." + target) for path in paths)
    ]
    if missing:
        linear = sorted(
            {
                path.rsplit(".", 1)[-1]
                for path, module in paths.items()
                if isinstance(module, torch.nn.Linear)
            }
        )
        raise ValueError(
            f"llm.target_modules: {', '.join(map(repr, missing))} matches no module of the "
            f"model; its linear layers are {', '.join(linear)}"
        )
    if getattr(model.config, "tie_word_embeddings", False):
        embedding = model.get_input_embeddings()
        names = {path.rsplit(".", 1)[-1] for path, module in paths.items() if module is embedding}
        if shared := [target for target in targets if target in names]:
            raise ValueError(
                f"llm.target_modules: {shared[0]!r} is the input embedding, whose weights the "
                "output head shares (tie_word_embeddings): training would adapt the "
                "embedding alone and merging the head too, so leave it out"
            )
