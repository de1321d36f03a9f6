"""Gathering embeddings from every process with gradients, so each process sees all others' negatives.

`torch.distributed.all_gather` returns tensors without a gradient path: a loss computed on gathered
embeddings would only train the local ones through the local rows. `gather_with_grad` is an autograd
function whose backward sums the gradient every process computed for the gathered tensor (all-reduce)
and hands each process the slice of its own rows. With per-process losses L_r, the local embeddings then
receive d(sum_r L_r)/dz, and DDP's gradient averaging turns that into the gradient of the mean loss over
the global batch, exactly as if one process had seen all rows (tested with 2 gloo processes).

It only uses `all_gather` and `all_reduce`, which every backend has (gloo lacks reduce-scatter), and it
pads to the largest local batch, so processes may hold different numbers of rows (a short last batch).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["is_distributed", "gather_with_grad"]


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _exchange_sizes(local_size: int, device: torch.device) -> list[int]:
    """Every process's row count, in rank order (one small all_gather)."""
    local = torch.tensor([local_size], device=device, dtype=torch.long)
    sizes = [torch.zeros_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, local)
    return [int(s.item()) for s in sizes]


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        largest = max(sizes)
        padded = tensor.contiguous()
        if tensor.shape[0] < largest:
            padding = tensor.new_zeros((largest - tensor.shape[0], *tensor.shape[1:]))
            padded = torch.cat([padded, padding])  # (largest, ...)
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded)
        ctx.sizes, ctx.rank = sizes, dist.get_rank()
        return torch.cat([part[:size] for part, size in zip(parts, sizes)])  # (sum(sizes), ...)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)  # every process's gradient for every row
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None


def gather_with_grad(tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenate `tensor` (B_r, ...) from all processes in rank order; gradients flow back to each owner.

    Returns `(gathered, offset)`: the (sum_r B_r, ...) tensor and the index of this process's first row in
    it. Outside a multi-process group it returns `(tensor, 0)` unchanged. Integer tensors (labels) are
    gathered the same way, without a gradient.
    """
    if not is_distributed():
        return tensor, 0
    sizes = _exchange_sizes(tensor.shape[0], tensor.device)
    gathered = _GatherWithGrad.apply(tensor, sizes)
    return gathered, sum(sizes[: dist.get_rank()])
