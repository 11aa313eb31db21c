"""The training loss is logged at every evaluation and at the last step.

The Trainer logs every `logging_steps` only: a run shorter than that ended with no loss
logged at all (its summary's train_loss was NaN), a curve stopped short of the final step,
and an early stop, which ends a run at an evaluation, left the last logged loss stale.
"""

from __future__ import annotations

from transformers import TrainerCallback


class LogAtEvaluationsAndLastStep(TrainerCallback):
    # Runs after the Trainer's own flow callback has decided this step's evaluation.
    def on_step_end(self, args, state, control, **kwargs):
        if control.should_evaluate or state.global_step >= state.max_steps:
            control.should_log = True
        return control
