"""The LM head's cross-entropy over labelled positions, a few dozen tokens at a time.

Computing the loss the plain way materialises fp32 logits for every labelled token
(tokens x vocabulary: 150-400 MB per step for SmolLM2's 49,152-token vocabulary at batch 8),
then log-softmax, its gradient, and for the logged entropy an exp and a product of the same
size. Each is a fresh allocation above glibc's mmap threshold, so every step pays page faults
on top of the memory traffic: on a 2-core CPU host this was about a third of a training step
(BENCHMARKS.md, "Sixteenth session"). Here the head runs on chunks whose logits stay around
16 MB; the forward keeps only each token's log-sum-exp, and the backward recomputes the
chunk's logits (one more head product, a few percent of a step) instead of storing them.
Token accuracy and entropy, which TRL logs, come out of the same pass.

The arithmetic matches the plain path: logits in the compute dtype, softmax in fp32, the
gradient cast back to the compute dtype for the product with the head weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# fp32 logits per chunk: 4M elements = 16 MB, small enough for the allocator to reuse.
CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class HeadLoss:
    """Summed cross-entropy (differentiable) and the batch's token metrics."""

    loss_sum: torch.Tensor
    correct: int
    entropy_sum: float


def chunk_tokens(vocab_size: int) -> int:
    return max(1, CHUNK_ELEMENTS // vocab_size)


class _ChunkedHeadCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, compute_dtype, chunk):
        device_type = hidden.device.type
        count = hidden.shape[0]
        log_norms = torch.empty(count, dtype=torch.float32, device=hidden.device)
        loss_sum = torch.zeros((), dtype=torch.float32, device=hidden.device)
        correct = torch.zeros((), dtype=torch.int64, device=hidden.device)
        entropy_sum = torch.zeros((), dtype=torch.float32, device=hidden.device)
        head = weight.to(compute_dtype)
        with torch.autocast(device_type, enabled=False):
            for start in range(0, count, chunk):
                rows = slice(start, start + chunk)
                logits = (hidden[rows].to(compute_dtype) @ head.T).float()
                norm = torch.logsumexp(logits, dim=-1)
                log_norms[rows] = norm
                loss_sum += (norm - logits.gather(1, targets[rows, None]).squeeze(1)).sum()
                correct += (logits.argmax(dim=-1) == targets[rows]).sum()
                log_probs = logits.sub_(norm[:, None])
                entropy_sum -= (log_probs.exp() * log_probs).sum()
        ctx.save_for_backward(hidden, weight, targets, log_norms)
        ctx.compute_dtype, ctx.chunk = compute_dtype, chunk
        ctx.mark_non_differentiable(correct, entropy_sum)
        return loss_sum, correct, entropy_sum

    @staticmethod
    def backward(ctx, grad_loss, _grad_correct, _grad_entropy):
        hidden, weight, targets, log_norms = ctx.saved_tensors
        compute_dtype, chunk = ctx.compute_dtype, ctx.chunk
        head = weight.to(compute_dtype)
        grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        grad_weight = (
            torch.zeros_like(weight, dtype=torch.float32) if ctx.needs_input_grad[1] else None
        )
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, hidden.shape[0], chunk):
                rows = slice(start, start + chunk)
                inputs = hidden[rows].to(compute_dtype)
                logits = (inputs @ head.T).float()
                # d(logsumexp - target logit)/d logits = softmax - one-hot
                grad_logits = logits.sub_(log_norms[rows, None]).exp_()
                grad_logits[torch.arange(grad_logits.shape[0]), targets[rows]] -= 1
                grad_logits = (grad_logits * grad_loss).to(compute_dtype)
                if grad_hidden is not None:
                    grad_hidden[rows] = grad_logits @ head
                if grad_weight is not None:
                    grad_weight += (grad_logits.T @ inputs).float()
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        return grad_hidden, grad_weight, None, None, None


def chunked_head_loss(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, compute_dtype: torch.dtype
) -> HeadLoss:
    """Cross-entropy of `hidden @ weight.T` against `targets`, summed over tokens.

    hidden: (tokens, width) at the labelled positions; weight: (vocabulary, width), the LM
    head's (bias-free) weight; compute_dtype: the dtype of the head product.
    """
    loss_sum, correct, entropy_sum = _ChunkedHeadCrossEntropy.apply(
        hidden, weight, targets, compute_dtype, chunk_tokens(weight.shape[0])
    )
    return HeadLoss(loss_sum, int(correct), float(entropy_sum))
