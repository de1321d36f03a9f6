"""Batch norm, dropout and attention kernels inside episodes (`MAMLConfig.batch_norm`, `MAMLConfig.dropout`), whatever
mode the module was in (it is restored afterwards):

- `batch_norm="batch"`: BN layers normalise with the statistics of the batch they see: the support
  batch in every inner step, the query batch for the query loss (Finn et al.'s transductive protocol,
  and the only choice for a network trained from scratch). Running statistics are never updated by
  episodes (BN runs with `track_running_stats` off), so inner steps leave no trace in buffers and the
  meta-gradient depends on the weights only.
- `batch_norm="running"`: BN in eval mode with the frozen running statistics, i.e. a fixed affine map
  per channel; each example is processed independently (no transduction), the pretrained statistics
  of a backbone are kept.
- dropout (and timm's stochastic depth) is off unless `dropout=True`, so the inner loop is
  deterministic and the meta-gradient exact.
- second order: `scaled_dot_product_attention` runs its math kernel inside episodes, because the fused
  CPU / CUDA kernels have no double backward.

Reference: Antoniou, Edwards, Storkey 2019, "How to train your MAML" (batch-norm pitfalls).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .arguments import MAMLConfig

__all__ = ["episode_mode", "examples_are_independent"]


def examples_are_independent(model: nn.Module, config: MAMLConfig) -> bool:
    """True when, in episodes, each example's output depends on that example only (no batch statistics)."""
    has_batch_norm = any(isinstance(m, _BatchNorm) for m in model.modules())
    return not config.dropout and (config.batch_norm == "running" or not has_batch_norm)


@contextlib.contextmanager
def episode_mode(model: nn.Module, config: MAMLConfig) -> Iterator[None]:
    """Dropout off (unless `dropout`), batch norm per `batch_norm` with running statistics untouched."""
    modes = [(m, m.training) for m in model.modules()]
    tracking = [(m, m.track_running_stats) for m in model.modules() if isinstance(m, _BatchNorm)]
    model.train(config.dropout)
    batch_stats = config.batch_norm == "batch"
    for m, _ in tracking:
        m.train(batch_stats)
        if batch_stats:
            m.track_running_stats = False  # batch statistics, running buffers neither read nor updated
    with contextlib.ExitStack() as stack:
        if not config.first_order:
            # Fused attention kernels (flash / memory-efficient) have no double backward; the math kernel
            # is made of differentiable ops, so second-order meta-gradients go through attention too.
            from torch.nn.attention import SDPBackend, sdpa_kernel

            stack.enter_context(sdpa_kernel(SDPBackend.MATH))
        try:
            yield
        finally:
            for m, mode in modes:
                m.training = mode
            for m, track in tracking:
                m.track_running_stats = track
