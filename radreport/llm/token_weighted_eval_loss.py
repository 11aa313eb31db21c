"""Validation loss as the mean over every labelled token of the validation set.

The Trainer averages each evaluation batch's loss (a mean over that batch's tokens) by
rows, so the validation loss depended on the evaluation batch size: the same model scored
11.5327 in batches of 4 and 11.5193 in batches of 2 on four rows of different lengths, and
two runs with different batch sizes were not comparable in the dashboard. Here each batch
weighs by its labelled tokens, whatever the batching.
"""

from __future__ import annotations

from radreport.data.alpaca import IGNORE_INDEX


class TokenWeightedEvalLoss:
    """Trainer mixin for a compute_loss that returns the batch's mean per labelled token
    (both backends' response-only cross-entropy, outside gradient accumulation). The sums
    are this process's: one device trains here; across several they would need gathering."""

    _eval_loss_sum = 0.0
    _eval_tokens = 0

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        loss, logits, labels = super().prediction_step(
            model, inputs, prediction_loss_only, ignore_keys=ignore_keys
        )
        if loss is not None and inputs.get("labels") is not None:
            # compute_loss scores each position against the next token's label
            tokens = int((inputs["labels"][:, 1:] != IGNORE_INDEX).sum())
            self._eval_loss_sum += float(loss) * tokens
            self._eval_tokens += tokens
        return loss, logits, labels

    def evaluation_loop(
        self,
        dataloader,
        description,
        prediction_loss_only=None,
        ignore_keys=None,
        metric_key_prefix="eval",
    ):
        self._eval_loss_sum, self._eval_tokens = 0.0, 0
        output = super().evaluation_loop(
            dataloader,
            description,
            prediction_loss_only=prediction_loss_only,
            ignore_keys=ignore_keys,
            metric_key_prefix=metric_key_prefix,
        )
        if self._eval_tokens and f"{metric_key_prefix}_loss" in output.metrics:
            output.metrics[f"{metric_key_prefix}_loss"] = self._eval_loss_sum / self._eval_tokens
        return output
