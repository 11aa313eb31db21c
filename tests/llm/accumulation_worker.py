"""One optimizer step of a tiny run in its own process; saves the adapters' gradients.

    python tests/llm/accumulation_worker.py JOB.json

JOB.json: {"rows": [...], "settings": {...LLMSettings fields}, "output_dir": ...,
"gradients": "FILE.safetensors"}. The gradients are taken just before the optimizer
applies them, summed over the step's micro-batches, in float32. Prints the step's logged
training loss as one JSON line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    from radreport.llm.finetune import import_backend
    from radreport.llm.settings import LLMSettings

    settings = LLMSettings(**job["settings"])
    import_backend(settings)  # unsloth first, as in a real training process
    import torch
    from safetensors.torch import save_file
    from transformers import TrainerCallback

    from radreport.llm.finetune import prepare_training

    class KeepGradients(TrainerCallback):
        def __init__(self):
            self.gradients = {}

        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            if state.global_step == 0:
                self.gradients = {
                    name: parameter.grad.detach().float().cpu().contiguous()
                    for name, parameter in model.named_parameters()
                    if parameter.requires_grad and parameter.grad is not None
                }

    keep = KeepGradients()
    rows = job["rows"]
    run = prepare_training(rows, rows, settings, job["output_dir"], callbacks=[keep])
    run.trainer.train()
    save_file(keep.gradients, job["gradients"])
    losses = [entry["loss"] for entry in run.trainer.state.log_history if "loss" in entry]
    print(json.dumps({"loss": losses[0], "device": str(torch.device(run.trainer.args.device))}))


if __name__ == "__main__":
    main(sys.argv[1])
