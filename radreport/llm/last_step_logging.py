"""The training loss of the last step is always logged.

The Trainer logs every `logging_steps` only: a run shorter than that (or one whose last step
falls between two logs) ended with no loss logged at all, so its summary's train_loss was
NaN, or the curve stopped short of the final step.
"""

from __future__ import annotations

from transformers import TrainerCallback


class LogLastStep(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_log = True
        return control
