"""The LM head's cross-entropy over labelled positions, a few dozen tokens at a time.

Computing the loss the plain way materialises fp32 logits for every labelled token
(tokens x vocabulary: 150-400 MB per step for SmolLM2's 49,152-token vocabulary at batch 8),
then log-softmax, its gradient, and for the logged entropy an exp and a product of the same
size. Each is a fresh allocation above glibc's mmap threshold, so every step pays page faults
on top of the memory traffic: on a 2-core CPU host this was 1.9 s of a 4.4 s training step
(BENCHMARKS.md, "Sixteenth session"). Here the head runs on chunks of about 16 MB of logits,
in buffers allocated once per pass and reused by every chunk; the forward keeps only each
token's log-sum-exp, and the backward recomputes the chunk's logits (one more head product,
a few percent of a step) instead of storing them.
Token accuracy and entropy, which TRL logs, come out of the same pass.

The arithmetic matches the plain path: logits in the compute dtype, softmax in fp32, the
gradient cast back to the compute dtype for the product with the head weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

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
    # Every chunk reuses the same few buffers through out= and in-place operations: a fresh
    # tokens x vocabulary tensor per chunk would be mapped and faulted in again each time.
    @staticmethod
    def forward(ctx, hidden, weight, targets, compute_dtype, chunk):
        count = hidden.shape[0]
        log_norms = torch.empty(count, dtype=torch.float32, device=hidden.device)
        loss_sum = torch.zeros((), dtype=torch.float32, device=hidden.device)
        correct = torch.zeros((), dtype=torch.int64, device=hidden.device)
        entropy_sum = torch.zeros((), dtype=torch.float32, device=hidden.device)
        head = weight.to(compute_dtype)
        buffers = _ChunkBuffers(min(chunk, count), head, with_probabilities=True)
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, count, chunk):
                rows = slice(start, start + chunk)
                logits = buffers.logits(hidden[rows].to(compute_dtype))
                # log-softmax in place: logits - max, then - log(sum(exp))
                shift = logits.amax(dim=-1, keepdim=True)
                logits.sub_(shift)
                exps = torch.exp(logits, out=buffers.probabilities[: logits.shape[0]])
                sums = exps.sum(dim=-1, keepdim=True)
                log_sums = sums.log()
                log_probs = logits.sub_(log_sums)
                log_norms[rows] = (shift + log_sums).squeeze(1)
                loss_sum -= log_probs.gather(1, targets[rows, None]).sum()
                # max's indices are argmax's (the first maximum, NaN first), 2.6x faster on CPU
                correct += (log_probs.max(dim=-1).indices == targets[rows]).sum()
                entropy_sum -= (exps.mul_(log_probs).sum(dim=-1, keepdim=True) / sums).sum()
        ctx.save_for_backward(hidden, weight, targets, log_norms)
        ctx.compute_dtype, ctx.chunk = compute_dtype, chunk
        ctx.mark_non_differentiable(correct, entropy_sum)
        return loss_sum, correct, entropy_sum

    @staticmethod
    def backward(ctx, grad_loss, _grad_correct, _grad_entropy):
        hidden, weight, targets, log_norms = ctx.saved_tensors
        compute_dtype, chunk = ctx.compute_dtype, ctx.chunk
        count = hidden.shape[0]
        head = weight.to(compute_dtype)
        grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        grad_weight = None
        if ctx.needs_input_grad[1]:
            grad_weight = torch.zeros_like(weight, dtype=torch.float32)
        buffers = _ChunkBuffers(min(chunk, count), head, with_probabilities=False)
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, count, chunk):
                rows = slice(start, start + chunk)
                inputs = hidden[rows].to(compute_dtype)
                # d(logsumexp - target logit)/d logits = softmax - one-hot
                grad_logits = buffers.logits(inputs).sub_(log_norms[rows, None]).exp_()
                grad_logits[torch.arange(grad_logits.shape[0]), targets[rows]] -= 1
                grad_logits = buffers.to_compute_dtype(grad_logits.mul_(grad_loss))
                if grad_hidden is not None:
                    grad_hidden[rows] = grad_logits @ head
                if grad_weight is not None:
                    grad_weight += (grad_logits.T @ inputs).float()
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        return grad_hidden, grad_weight, None, None, None


class _ChunkBuffers:
    """The chunk's head product (compute dtype), its fp32 logits and fp32 probabilities."""

    def __init__(self, rows: int, head: torch.Tensor, with_probabilities: bool):
        shape, device = (rows, head.shape[0]), head.device
        self.head = head
        self.fp32 = torch.empty(shape, dtype=torch.float32, device=device)
        self.product = self.fp32
        if head.dtype != torch.float32:
            self.product = torch.empty(shape, dtype=head.dtype, device=device)
        self.probabilities = None
        if with_probabilities:
            self.probabilities = torch.empty(shape, dtype=torch.float32, device=device)

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        rows = inputs.shape[0]
        product = torch.mm(inputs, self.head.T, out=self.product[:rows])
        if self.product is self.fp32:
            return product
        return self.fp32[:rows].copy_(product)

    def to_compute_dtype(self, fp32: torch.Tensor) -> torch.Tensor:
        if self.product is self.fp32:
            return fp32
        return self.product[: fp32.shape[0]].copy_(fp32)


def materialized_head_loss(logits: torch.Tensor, targets: torch.Tensor) -> HeadLoss:
    """The plain computation over all logits at once (fp32 `logits`, tokens x vocabulary),
    for heads the chunked path cannot take (wrapped or quantized) and as its reference."""
    with torch.no_grad():
        log_probs = logits.log_softmax(-1)
        entropy_sum = -(log_probs.exp() * log_probs).sum()
        correct = (logits.argmax(-1) == targets).sum()
    return HeadLoss(
        F.cross_entropy(logits, targets, reduction="sum"), int(correct), float(entropy_sum)
    )


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
