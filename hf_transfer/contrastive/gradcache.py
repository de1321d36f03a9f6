"""GradCache: the gradients of a contrastive loss over a large batch at the memory of one mini-batch.

In-batch negatives make the rows of a batch depend on each other, so plain gradient accumulation
changes the loss. GradCache (Gao et al. 2021, https://arxiv.org/abs/2101.06983; the same scheme as
sentence-transformers' `CachedMultipleNegativesRankingLoss`) splits the computation instead:

1. embed every mini-batch without building a graph, saving the RNG state before each one;
2. compute the loss on the detached embeddings and its gradient w.r.t. them (and w.r.t. the loss's own
   parameters, e.g. a learnable temperature): the cache;
3. during the outer backward pass, re-embed each mini-batch with a graph, under its saved RNG state (so
   dropout draws the same masks), and back-propagate `<embeddings, cached gradient>`.

Only one mini-batch's activations are alive at a time. Step 3 runs in a hook on the returned loss, so
`Trainer`'s own `backward` (gradient-accumulation scaling, mixed precision) drives it; under DDP every
mini-batch but the last is replayed inside `no_sync`, so gradients are all-reduced once.
"""

from __future__ import annotations

from contextlib import nullcontext
from functools import partial
from typing import Callable, Optional

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["RandContext", "split_features", "cached_contrastive_loss", "embed_in_mini_batches"]


class RandContext:
    """Snapshot of the CPU and CUDA RNG states at creation, restored on `with` (outer state kept)."""

    def __init__(self, *tensors: torch.Tensor):
        self.cpu_state = torch.get_rng_state()
        self.devices = sorted({t.device.index or 0 for t in tensors if isinstance(t, torch.Tensor) and t.is_cuda})
        self.cuda_states = [torch.cuda.get_rng_state(d) for d in self.devices]
        self._fork = None

    def __enter__(self) -> None:
        self._fork = torch.random.fork_rng(devices=self.devices, enabled=True)
        self._fork.__enter__()
        torch.set_rng_state(self.cpu_state)
        for device, state in zip(self.devices, self.cuda_states):
            torch.cuda.set_rng_state(state, device)

    def __exit__(self, *exc) -> None:
        self._fork.__exit__(*exc)
        self._fork = None


def _batch_size(features: dict[str, torch.Tensor]) -> int:
    return next(v.shape[0] for v in features.values() if isinstance(v, torch.Tensor) and v.ndim > 0)


def split_features(features: dict[str, torch.Tensor], mini_batch_size: int) -> list[dict[str, torch.Tensor]]:
    """Slice a batch of model inputs into mini-batches of rows, trimming padding columns none of them use."""
    total = _batch_size(features)
    mask = features.get("attention_mask")
    chunks = []
    for begin in range(0, total, mini_batch_size):
        end = min(begin + mini_batch_size, total)
        width = None
        if isinstance(mask, torch.Tensor) and mask.ndim == 2:
            used = mask[begin:end].bool().any(dim=0).nonzero()
            width = int(used.max()) + 1 if len(used) else mask.shape[1]
        chunk = {}
        for key, value in features.items():
            if not isinstance(value, torch.Tensor):
                chunk[key] = value
            elif width is not None and value.ndim == 2 and value.shape[1] == mask.shape[1]:
                chunk[key] = value[begin:end, :width]  # (b, T') right padding trimmed
            else:
                chunk[key] = value[begin:end]
        chunks.append(chunk)
    return chunks


def embed_in_mini_batches(model: nn.Module, features: dict[str, torch.Tensor], mini_batch_size: int) -> torch.Tensor:
    """`model(**features)` computed mini-batch by mini-batch under `torch.no_grad` (evaluation)."""
    with torch.no_grad():
        return torch.cat([model(**chunk) for chunk in split_features(features, mini_batch_size)])


def _replay(
    grad_output: torch.Tensor,
    model: nn.Module,
    chunks: list[dict[str, torch.Tensor]],
    states: list[RandContext],
    grads: list[torch.Tensor],
    params: list[nn.Parameter],
    param_grads: list[torch.Tensor],
) -> None:
    """Step 3, run as a hook on the loss: re-embed each mini-batch and back-propagate its cached gradient."""
    is_ddp = isinstance(model, DistributedDataParallel)
    with torch.enable_grad():
        for i, (chunk, state, grad) in enumerate(zip(chunks, states, grads)):
            last = i == len(chunks) - 1
            with model.no_sync() if is_ddp and not last else nullcontext():
                with state:
                    embeddings = model(**chunk)  # (b, D)
                surrogate = torch.dot(embeddings.flatten().float(), grad.flatten().float()) * grad_output
                if last:  # the loss's own parameters, once, in the step that synchronises
                    for param, param_grad in zip(params, param_grads):
                        surrogate = surrogate + (param * param_grad).sum() * grad_output
                surrogate.backward()


def cached_contrastive_loss(
    model: nn.Module,
    features: dict[str, torch.Tensor],
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    mini_batch_size: int,
    loss_parameters: Optional[list[nn.Parameter]] = None,
) -> torch.Tensor:
    """GradCache forward: returns the loss of `loss_fn(model(**features))`, whose backward fills the gradients.

    Args:
        model: maps a mini-batch of inputs to embeddings (b, D); may be DDP-wrapped.
        features: the whole batch of inputs (N rows).
        loss_fn: embeddings (N, D) -> scalar loss (may gather across processes).
        mini_batch_size: rows embedded at once.
        loss_parameters: trainable parameters used by `loss_fn` itself (a learnable temperature).

    Returns:
        A scalar leaf tensor: call `.backward()` (or let `Trainer` do it) to accumulate exactly the gradients
        of the uncached loss into the model's and the loss's parameters.
    """
    chunks = split_features(features, mini_batch_size)
    params = [p for p in (loss_parameters or []) if p.requires_grad]
    # Step 1: embeddings without graphs; the RNG state before each mini-batch is kept for the replay.
    states, pieces = [], []
    with torch.no_grad():
        for chunk in chunks:
            states.append(RandContext(*chunk.values()))
            pieces.append(model(**chunk))
    embeddings = torch.cat(pieces).detach().requires_grad_()  # (N, D)
    # Step 2: loss and its gradient w.r.t. the embeddings (the cache) and the loss's parameters.
    with torch.enable_grad():
        loss = loss_fn(embeddings)
        cached = torch.autograd.grad(loss, [embeddings, *params], allow_unused=True)
    cached = [torch.zeros_like(t) if g is None else g for t, g in zip([embeddings, *params], cached)]
    grads = list(torch.split(cached[0], [piece.shape[0] for piece in pieces]))
    # Step 3 happens in the backward pass of the returned leaf.
    out = loss.detach().requires_grad_()
    out.register_hook(
        partial(
            _replay, model=model, chunks=chunks, states=states, grads=grads, params=params, param_grads=list(cached[1:])
        )
    )
    return out
