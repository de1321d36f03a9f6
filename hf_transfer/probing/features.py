"""Frozen features: the input of one module of the model (a forward pre-hook), for every row of a data set."""

from __future__ import annotations

import logging
from typing import Callable, Optional

import torch
from datasets import Dataset
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..models.heads import get_classifier, resolve_module
from ..processing import IGNORED_LABEL
from .cache import FeatureCache

__all__ = ["extract_features", "capture_input"]

logger = logging.getLogger(__name__)


def capture_input(module: nn.Module, store: list[torch.Tensor]):
    return module.register_forward_pre_hook(lambda _module, args: store.append(args[0].detach().float().cpu()))


@torch.inference_mode()
def _run_extraction(
    model: nn.Module,
    dataset: Dataset,
    collate_fn: Callable,
    batch_size: int,
    device: torch.device,
    desc: str,
    module_name: Optional[str] = None,
) -> dict[str, torch.Tensor]:
    captured: list[torch.Tensor] = []
    hook = capture_input(resolve_module(model, module_name) if module_name else get_classifier(model), captured)
    labels: list[torch.Tensor] = []
    was_training = model.training
    model.eval()
    try:
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn)
        for batch in tqdm(loader, desc=desc, unit="batch"):
            batch_labels = batch.pop("labels")
            model(**{k: v.to(device) for k, v in batch.items()})
            if batch_labels.dim() == 2 and not batch_labels.is_floating_point():  # a tag per token: keep tagged ones
                tagged = batch_labels != IGNORED_LABEL
                captured[-1] = captured[-1][tagged]  # (B, T, D) -> (tagged tokens, D)
                batch_labels = batch_labels[tagged]
            labels.append(batch_labels)
    finally:
        hook.remove()
        model.train(was_training)
    features = torch.cat(captured).flatten(1)  # (N, D): rows, or tagged tokens in row order
    labels = torch.cat(labels)  # (N,): class ids, float targets of a regression, or (N, K) multi-label rows
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
) -> tuple[torch.Tensor, torch.Tensor]:
    """The input of module `module_name` (default: the head's final Linear) for every row of `dataset`, and labels.

    The model runs frozen, in eval mode. With a cache and key, a second call (another probe setting, a
    rerun) reads them back instead.
    """
    if cache is not None and cache_key is not None:
        cached = cache.load(cache_key)
        # `rows`: the data set's row count (a token probe's features are one per tagged token, not per row).
        rows = int(cached["rows"]) if cached is not None and "rows" in cached else None
        if cached is not None and (rows if rows is not None else cached["features"].shape[0]) == len(dataset):
            logger.info("%s: using cached features %s", desc, cache.path(cache_key))
            return cached["features"], cached["labels"]
    device = device or next(model.parameters()).device
    # Clone outside inference mode: inference tensors cannot take part in the probe's autograd.
    out = _run_extraction(model, dataset, collate_fn, batch_size, device, desc, module_name)
    out = {k: v.clone() for k, v in out.items()}
    out["rows"] = torch.tensor(len(dataset))
    if cache is not None and cache_key is not None:
        path = cache.save(cache_key, out)
        logger.info("%s: cached %s features at %s", desc, tuple(out["features"].shape), path)
    return out["features"], out["labels"]
