"""A learning-rate warmup that ends before the run's last step.

transformers warms up linearly from a learning rate of 0 over ceil(warmup_ratio × steps)
steps. A run of one step (a smoke test, a `max_steps: 1` check of a new config) then took
its only step at learning rate 0 and stored an adapter that was still the untrained one.
Here the warmup is cut to leave the last step at least: only runs whose warmup would have
covered every step change (one step, at any warmup_ratio below 0.5).
"""

from __future__ import annotations

from transformers import get_scheduler


class WarmupBeforeLastStep:
    """Trainer mixin: the scheduler's warmup is at most `num_training_steps - 1` steps."""

    def create_scheduler(self, num_training_steps, optimizer=None):
        if (
            self.lr_scheduler is None
            and self.args.get_warmup_steps(num_training_steps) >= num_training_steps
        ):
            self.lr_scheduler = get_scheduler(
                self.args.lr_scheduler_type,
                optimizer=optimizer if optimizer is not None else self.optimizer,
                num_warmup_steps=num_training_steps - 1,
                num_training_steps=num_training_steps,
                scheduler_specific_kwargs=self.args.lr_scheduler_kwargs,
            )
            self._created_lr_scheduler = True
        return super().create_scheduler(num_training_steps, optimizer)
