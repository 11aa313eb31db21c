"""The LoRA target names of the settings, checked against the model they will adapt.

peft matches each name against the end of the model's module paths and says nothing of a
name that matches none while another does: a misspelt `gate_prj` beside `q_proj` trained
without the MLP, and its adapter's config still listed `gate_prj`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers.pytorch_utils import Conv1D

# The layers peft's LoRA adapts by name: linear ones, and GPT-2's Conv1D (a linear layer with
# its weight transposed), whose names c_attn, c_proj and c_fc would otherwise go unlisted.
_LAYERS_LORA_ADAPTS = (torch.nn.Linear, Conv1D)


def check_lora_targets(model, targets: Sequence[str]) -> None:
    """ValueError naming `llm.target_modules` for a name that matches no module of `model`,
    or that matches its input embedding or output head where the two share their weights."""
    paths = {path: module for path, module in model.named_modules() if path}
    matched = {
        target: [path for path in paths if path == target or path.endswith("." + target)]
        for target in targets
    }
    if missing := [target for target, found in matched.items() if not found]:
        linear = sorted(
            {
                path.rsplit(".", 1)[-1]
                for path, module in paths.items()
                if isinstance(module, _LAYERS_LORA_ADAPTS)
            }
        )
        raise ValueError(
            f"llm.target_modules: {', '.join(map(repr, missing))} matches no module of the "
            f"model; its linear layers are {', '.join(linear)}"
        )
    if getattr(model.config, "tie_word_embeddings", False):
        tied = {id(model.get_input_embeddings()), id(model.get_output_embeddings())}
        for target, found in matched.items():
            if any(id(paths[path]) in tied for path in found):
                raise ValueError(
                    f"llm.target_modules: {target!r} is the input embedding or the output "
                    "head, which share their weights (tie_word_embeddings): training would "
                    "adapt one and merging both, so leave it out"
                )
