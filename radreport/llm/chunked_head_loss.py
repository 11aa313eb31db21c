"""The LM head's cross-entropy over labelled positions, a few dozen tokens at a time.

Computing the loss the plain way materialises fp32 logits for every labelled token
(tokens x vocabulary: 150-400 MB per step for SmolLM2's 49,152-token vocabulary at batch 8),
then log-softmax, its gradient, and for the logged entropy an exp and a product of the same
size. Each is a fresh allocation above glibc's mmap threshold, so every step pays page faults
on top of the memory traffic: on a 2-core CPU host this was 1.9 s of a 4.4 s training step
(BENCHMARKS.md, "Sixteenth session"). Here the head runs on chunks of about 16 MB of logits,
in buffers allocated once per pass and reused by every chunk. The loss is where the graph
ends, so its gradient with respect to the hidden states (and to the head, when that is
trained) is known up to the one scale the backward brings: it is taken in the same pass, from
each chunk's softmax while it is in memory, and the backward only scales it. Keeping the
hidden gradient costs tokens x width; recomputing the chunk's logits in the backward instead
would cost a third head product and four more passes over each chunk. Token accuracy and
entropy, which TRL logs, come out of the same pass.

The arithmetic matches the plain path: logits in the compute dtype, softmax in fp32, the
gradient cast back to the compute dtype for the product with the head weight. One rounding
moves: the backward's scale (1 / labelled tokens) is applied to the product's result rather
than to the softmax gradient before its cast, a difference within the compute dtype's
rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from radreport.llm.training_kernels import kernel, runs_on

# fp32 logits per chunk: 4M elements = 16 MB, small enough for the allocator to reuse.
CHUNK_ELEMENTS = 1 << 22
# Rows per chunk for the compiled kernel, which passes over one row at a time in cache: the
# chunk sets only the head product's shape, and taller products run faster (BENCHMARKS.md,
# "Twentieth session").
KERNEL_CHUNK_ROWS = 256
# The last chunk's rows are padded to a multiple of this, so its product shapes repeat from
# step to step: oneDNN generates a kernel per new shape, 55 ms for the input gradient's
# [rows, 49152] x [49152, 576] (BENCHMARKS.md, "Twentieth session").
KERNEL_ROW_MULTIPLE = 32


@dataclass(frozen=True)
class HeadLoss:
    """Summed cross-entropy (differentiable) and the batch's token metrics."""

    loss_sum: torch.Tensor
    correct: int
    entropy_sum: float


def chunk_tokens(vocab_size: int) -> int:
    return max(1, CHUNK_ELEMENTS // vocab_size)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class _Totals:
    """The pass's running sums, kept as tensors so no chunk waits on a device read."""

    def __init__(self, device: torch.device):
        self.loss = torch.zeros((), dtype=torch.float32, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.entropy = torch.zeros((), dtype=torch.float32, device=device)


class _ChunkedHeadCrossEntropy(torch.autograd.Function):
    # Every chunk reuses the same few buffers through out= and in-place operations: a fresh
    # tokens x vocabulary tensor per chunk would be mapped and faulted in again each time.
    @staticmethod
    def forward(ctx, hidden, weight, targets, compute_dtype, chunk, with_gradients, fused):
        count = hidden.shape[0]
        totals = _Totals(hidden.device)
        head = weight.to(compute_dtype)
        needs_hidden, needs_weight = (with_gradients and n for n in ctx.needs_input_grad[:2])
        # The loss is the graph's end, so its backward only scales: the gradients are
        # taken here, while each chunk's softmax is at hand, for the scale 1.
        grad_hidden = torch.empty_like(hidden) if needs_hidden else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if needs_weight else None
        wants_gradient = grad_hidden is not None or grad_weight is not None
        scorer = (_KernelScorer if fused else _TorchScorer)(min(chunk, count), head)
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, count, chunk):
                rows = slice(start, start + chunk)
                chunk_targets = targets[rows]
                inputs = scorer.padded(hidden[rows].to(compute_dtype))
                grad_logits = scorer.score(inputs, chunk_targets, totals, wants_gradient)
                # padding rows carry a zero gradient: they add nothing and are cut off
                if grad_hidden is not None:
                    grad_hidden[rows] = (grad_logits @ head)[: len(chunk_targets)]
                if grad_weight is not None:
                    grad_weight += (grad_logits.T @ inputs).float()
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.weight_dtype = weight.dtype
        ctx.mark_non_differentiable(totals.correct, totals.entropy)
        return totals.loss, totals.correct, totals.entropy

    @staticmethod
    def backward(ctx, grad_loss, _grad_correct, _grad_entropy):
        grad_hidden, grad_weight = ctx.saved_tensors
        if grad_hidden is not None:
            grad_hidden = (grad_hidden * grad_loss).to(grad_hidden.dtype)
        if grad_weight is not None:
            grad_weight = (grad_weight * grad_loss).to(ctx.weight_dtype)
        return grad_hidden, grad_weight, None, None, None, None, None


class _TorchScorer:
    """A chunk's loss, metrics and logits gradient in PyTorch operations, on any device.

    Buffers: the head product (compute dtype) and three fp32 chunks: logits, exps, scratch.
    """

    def __init__(self, rows: int, head: torch.Tensor):
        shape, device = (rows, head.shape[0]), head.device
        self.head = head
        self.fp32 = torch.empty(shape, dtype=torch.float32, device=device)
        self.product = self.fp32
        if head.dtype != torch.float32:
            self.product = torch.empty(shape, dtype=head.dtype, device=device)
        self.exps = torch.empty(shape, dtype=torch.float32, device=device)
        self.scratch = torch.empty(shape, dtype=torch.float32, device=device)

    def padded(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs

    def score(self, inputs, targets, totals: _Totals, wants_gradient: bool):
        """Adds the chunk to `totals`; softmax - one-hot in the compute dtype, or None."""
        rows = inputs.shape[0]
        product = torch.mm(inputs, self.head.T, out=self.product[:rows])
        logits = product if self.product is self.fp32 else self.fp32[:rows].copy_(product)
        # max's indices are argmax's (the first maximum, NaN first), and its values are the
        # shift that keeps exp finite: one pass for both
        shift, predicted = logits.max(dim=-1, keepdim=True)
        totals.correct += (predicted.squeeze(1) == targets).sum()
        # log-softmax in place: logits - max, then - log(sum(exp))
        logits.sub_(shift)
        exps = torch.exp(logits, out=self.exps[:rows])
        sums = exps.sum(dim=-1, keepdim=True)
        log_probs = logits.sub_(sums.log())
        totals.loss -= log_probs.gather(1, targets[:, None]).sum()
        weighted = torch.mul(exps, log_probs, out=self.scratch[:rows])
        totals.entropy -= (weighted.sum(dim=-1, keepdim=True) / sums).sum()
        if not wants_gradient:
            return None
        # d(logsumexp - target logit)/d logits = softmax - one-hot, the one-hot taken off in
        # fp32 before the division (p - 1 in bf16 would lose most of its digits)
        exps[torch.arange(rows), targets] -= sums.squeeze(1)
        out = self.product if self.product is not self.fp32 else self.scratch
        return torch.div(exps, sums, out=out[:rows])


class _KernelScorer:
    """The same in one compiled CPU kernel (training_kernels.c, cross_entropy_rows): three
    passes over each row while it is in cache, writing the gradient over the logits."""

    def __init__(self, rows: int, head: torch.Tensor):
        self.head = head
        rows = _round_up(rows, KERNEL_ROW_MULTIPLE)
        self.product = torch.empty((rows, head.shape[0]), dtype=head.dtype)
        self.stats = torch.empty((rows, 3), dtype=torch.float32)
        self.function = kernel("cross_entropy_rows", head.dtype)

    def padded(self, inputs: torch.Tensor) -> torch.Tensor:
        """`inputs` with zero rows up to a multiple of KERNEL_ROW_MULTIPLE."""
        missing = _round_up(inputs.shape[0], KERNEL_ROW_MULTIPLE) - inputs.shape[0]
        return F.pad(inputs, (0, 0, 0, missing)) if missing else inputs

    def score(self, inputs, targets, totals: _Totals, wants_gradient: bool):
        """Scores the first len(targets) rows of `inputs`. The others are padding, zero
        inputs whose logits are zero, left as the zero gradient they should have."""
        logits = torch.mm(inputs, self.head.T, out=self.product[: inputs.shape[0]])
        rows = targets.shape[0]
        targets = targets.contiguous()
        stats = self.stats[:rows]
        self.function(
            logits.data_ptr(),
            targets.data_ptr(),
            logits.data_ptr() if wants_gradient else None,
            stats.data_ptr(),
            rows,
            logits.shape[1],
            torch.get_num_threads(),
        )
        sums = stats.sum(dim=0)
        totals.loss += sums[0]
        totals.entropy += sums[1]
        totals.correct += sums[2].round().long()
        return logits if wants_gradient else None


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
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    compute_dtype: torch.dtype,
    fused: bool = True,
) -> HeadLoss:
    """Cross-entropy of `hidden @ weight.T` against `targets`, summed over tokens.

    hidden: (tokens, width) at the labelled positions; weight: (vocabulary, width), the LM
    head's (bias-free) weight; compute_dtype: the dtype of the head product. `fused` scores
    the chunks with the compiled CPU kernel where it takes these tensors (CPU, bf16 or fp32,
    a C compiler on this machine); elsewhere, or with False, PyTorch operations do.
    """
    with_gradients = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    fused = fused and runs_on(torch.empty(0, dtype=compute_dtype, device=hidden.device))
    chunk = KERNEL_CHUNK_ROWS if fused else chunk_tokens(weight.shape[0])
    loss_sum, correct, entropy_sum = _ChunkedHeadCrossEntropy.apply(
        hidden, weight, targets, compute_dtype, chunk, with_gradients, fused
    )
    return HeadLoss(loss_sum, int(correct), float(entropy_sum))
