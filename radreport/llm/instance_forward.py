"""Rerouting chosen modules of a model through our own forward, one instance at a time.

The fused LoRA layers, RMSNorm and SwiGLU paths replace `forward` on the module instances
they fit, not on their classes: other models in the process, the class's own forward (which
the rerouted forward falls back to) and the state dict stay as they were.
"""

from __future__ import annotations

import types
from collections.abc import Callable

import torch


def set_instance_forward(
    model: torch.nn.Module,
    applies: Callable[[torch.nn.Module], bool],
    forward: Callable,
) -> int:
    """Bind `forward` as the own forward of every module of `model` that `applies` to;
    returns how many."""
    count = 0
    for module in model.modules():
        if applies(module):
            module.forward = types.MethodType(forward, module)
            count += 1
    return count
