"""Frozen features: the input of one module of the model (a forward pre-hook), for every row of a data set.

Under several processes (`across_processes=True`, every rank calling) each rank runs every world-size-th batch
position of the length order, so the ranks get equal shares of long and short rows, and the rows are gathered back
into data set order on every rank: the same features as one process extracting everything, in 1/N of the time.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

import torch
import torch.distributed as dist
from datasets import Dataset
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..models.heads import get_classifier, resolve_module
from ..processing import IGNORED_LABEL
from .cache import FeatureCache

__all__ = ["extract_features", "capture_input", "length_order"]

logger = logging.getLogger(__name__)


def capture_input(module: nn.Module, store: list[torch.Tensor]):
    return module.register_forward_pre_hook(lambda _module, args: store.append(args[0].detach().float().cpu()))


def length_order(dataset: Dataset) -> Optional[list[int]]:
    """Row indices longest first, for token inputs (None for images, whose rows are all one size).

    A batch pads to its longest row: in data set order one long row makes its batch all long, sorted the batches
    pad to their own length (what sentence-transformers' `encode` does). Longest first: the first batch is the most
    memory, so a too-large batch size fails at once, not at the end.
    """
    if not isinstance(dataset, Dataset) or "input_ids" not in dataset.column_names:
        return None
    lengths = [len(ids) for ids in dataset.with_format("arrow")["input_ids"].to_pylist()]
    return sorted(range(len(lengths)), key=lambda i: -lengths[i])


def _rank_and_world(across_processes: bool) -> tuple[int, int]:
    if across_processes and dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_ranks_agree(flag: bool, world: int) -> bool:
    """Whether `flag` holds on every rank (an object gather: it works over gloo and NCCL alike)."""
    if world == 1:
        return flag
    flags: list = [None] * world
    dist.all_gather_object(flags, flag)
    return all(flags)


@torch.inference_mode()
def _run_extraction(
    model: nn.Module,
    dataset: Dataset,
    collate_fn: Callable,
    batch_size: int,
    device: torch.device,
    desc: str,
    module_name: Optional[str] = None,
    across_processes: bool = False,
) -> dict[str, torch.Tensor]:
    captured: list[torch.Tensor] = []
    hook = capture_input(resolve_module(model, module_name) if module_name else get_classifier(model), captured)
    order = length_order(dataset)
    order = order if order is not None else list(range(len(dataset)))
    rank, world = _rank_and_world(across_processes)
    # This rank's batches: positions b*world + rank of the length order's batches (see the module docstring).
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    mine = [index for batch in batches[rank::world] for index in batch]
    if world > 1:
        logger.info("%s: this process extracts %d of %d rows (%d processes)", desc, len(mine), len(order), world)
    rows: list[tuple[torch.Tensor, torch.Tensor]] = []  # (features, labels) per row, in the order they ran
    per_token = False
    was_training = model.training
    model.eval()
    try:
        subset = dataset if mine == list(range(len(dataset))) else dataset.select(mine)
        loader = DataLoader(subset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn)
        for batch in tqdm(loader, desc=desc, unit="batch"):
            batch_labels = batch.pop("labels")
            model(**{k: v.to(device) for k, v in batch.items()})
            batch_features = captured.pop()
            if batch_labels.dim() == 2 and not batch_labels.is_floating_point():  # a tag per token: keep tagged ones
                tagged, per_token = batch_labels != IGNORED_LABEL, True
                rows += [(f[t], y[t]) for f, y, t in zip(batch_features, batch_labels, tagged)]  # (tagged, D) each
            else:
                rows += list(zip(batch_features.flatten(1), batch_labels))
    finally:
        hook.remove()
        model.train(was_training)
    if world > 1:  # every rank's rows, on every rank
        shares: list = [None] * world
        dist.all_gather_object(shares, (mine, rows, per_token))
        mine = [index for indices, _, _ in shares for index in indices]
        rows = [row for _, share, _ in shares for row in share]
        per_token = any(tokens for _, _, tokens in shares)
    restored: list = [None] * len(rows)  # back to data set order
    for position, index in enumerate(mine):
        restored[index] = rows[position]
    rows = restored
    if per_token:  # (N, D): tagged tokens in row order
        features, labels = torch.cat([f for f, _ in rows]), torch.cat([y for _, y in rows])
    else:  # (N, D) rows; labels (N,) class ids or float targets, or (N, K) multi-label rows
        features, labels = torch.stack([f for f, _ in rows]), torch.stack([y for _, y in rows])
    return {"features": features, "labels": labels if labels.is_floating_point() else labels.long()}


def extract_features(
    model: nn.Module,
    dataset: Dataset,
    collate_fn: Callable,
    *,
    cache: Optional[FeatureCache],
    cache_key: Optional[str],
    batch_size: int = 64,
    device: Optional[torch.device] = None,
    desc: str = "Extracting features",
    module_name: Optional[str] = None,
    across_processes: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The input of module `module_name` (default: the head's final Linear) for every row of `dataset`, and labels.

    The model runs frozen, in eval mode. With a cache and key, a second call (another probe setting, a
    rerun) reads them back instead. `across_processes`: every process of the run calls this, and each extracts a
    share (see the module docstring); the cache is then read only when every process finds it, and written by the
    first.
    """
    rank, world = _rank_and_world(across_processes)
    cached = cache.load(cache_key) if cache is not None and cache_key is not None else None
    # `rows`: the data set's row count (a token probe's features are one per tagged token, not per row).
    rows = int(cached["rows"]) if cached is not None and "rows" in cached else None
    hit = cached is not None and (rows if rows is not None else cached["features"].shape[0]) == len(dataset)
    if _all_ranks_agree(hit, world):
        logger.info("%s: using cached features %s", desc, cache.path(cache_key))
        return cached["features"], cached["labels"]
    device = device or next(model.parameters()).device
    # Clone outside inference mode: inference tensors cannot take part in the probe's autograd.
    out = _run_extraction(model, dataset, collate_fn, batch_size, device, desc, module_name, across_processes)
    out = {k: v.clone() for k, v in out.items()}
    out["rows"] = torch.tensor(len(dataset))
    if cache is not None and cache_key is not None and rank == 0:
        path = cache.save(cache_key, out)
        if path is not None:  # None: not written, and the cache has said why in its one warning line
            logger.info("%s: cached %s features at %s", desc, tuple(out["features"].shape), path)
    return out["features"], out["labels"]
