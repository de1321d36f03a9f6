"""Linear probing: frozen features extracted once and cached, then a multinomial logistic regression.

The features are exactly what the stock classification head of the model sees (the input of its
final `nn.Linear`, captured by a forward pre-hook), so the fitted probe is copied into that layer and
the result is a plain `AutoModelFor...Classification` checkpoint: no custom class, no remote code.

The probe follows the CLIP / DINOv2 protocol: features are standardised, the L2 strength is swept on
a log grid and chosen by validation accuracy, each fit is a full-batch L-BFGS solve in torch warm-
started from the previous (stronger) regularisation; the standardisation is folded back into the
weights so the saved head takes raw features.

References:
    Radford et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision" (CLIP), sec. 3.2.
    Oquab et al. 2023, "DINOv2: Learning Robust Visual Features without Supervision", linear evaluation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Sequence

import torch
from datasets import Dataset
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .backbones import default_cache_dir, get_classifier

__all__ = [
    "DEFAULT_L2_GRID",
    "ProbeResult",
    "FeatureCache",
    "extract_features",
    "fit_linear_probe",
    "load_probe_into_classifier",
    "probe_classification_model",
]

logger = logging.getLogger(__name__)

# Weight decay strengths (lambda in  CE + lambda/2 * ||W||^2 ) tried from strongest to weakest.
DEFAULT_L2_GRID: tuple[float, ...] = tuple(10.0**k for k in range(1, -7, -1))


# --------------------------------------------------------------------------------------------------
# Feature extraction and its cache


class FeatureCache:
    """Extracted features on disk, one safetensors file per (model, data, preprocessing) key.

    Files are written to a temporary name and renamed, so an interrupted extraction never leaves a
    truncated file that a later run would trust.
    """

    def __init__(self, cache_dir: Optional[str | os.PathLike] = None):
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir() / "features"

    @staticmethod
    def make_key(**parts: Any) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def path(self, key: str) -> Path:
        return self.cache_dir / f"{key}.safetensors"

    def load(self, key: str) -> Optional[dict[str, torch.Tensor]]:
        file = self.path(key)
        if not file.is_file():
            return None
        try:
            return load_file(str(file))
        except Exception as err:  # a corrupt file is a cache miss, not a failure
            logger.warning("Ignoring unreadable cached features %s (%s)", file, err)
            return None

    def save(self, key: str, tensors: dict[str, torch.Tensor], metadata: Optional[dict[str, str]] = None) -> Path:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}-", suffix=".tmp", dir=self.cache_dir)
        os.close(fd)
        try:
            save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
            os.replace(tmp, self.path(key))
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return self.path(key)


@torch.inference_mode()
def _run_extraction(
    model: nn.Module, dataset: Dataset, collate_fn: Callable, batch_size: int, device: torch.device, desc: str
) -> dict[str, torch.Tensor]:
    captured: list[torch.Tensor] = []
    head = get_classifier(model)
    hook = head.register_forward_pre_hook(lambda _module, args: captured.append(args[0].detach().float().cpu()))
    labels: list[torch.Tensor] = []
    was_training = model.training
    model.eval()
    try:
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn)
        for batch in tqdm(loader, desc=desc, unit="batch"):
            batch_labels = batch.pop("labels")
            model(**{k: v.to(device) for k, v in batch.items()})
            labels.append(batch_labels)
    finally:
        hook.remove()
        model.train(was_training)
    features = torch.cat(captured).flatten(1)  # (N, D)
    return {"features": features, "labels": torch.cat(labels).long()}  # (N,)


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
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features seen by the head of `model` (frozen, eval mode) for every row of `dataset`, and labels.

    With a cache and key, a second call (another probe setting, a rerun) reads them back instead.
    """
    if cache is not None and cache_key is not None:
        cached = cache.load(cache_key)
        if cached is not None and cached["features"].shape[0] == len(dataset):
            logger.info("%s: using cached features %s", desc, cache.path(cache_key))
            return cached["features"], cached["labels"]
    device = device or next(model.parameters()).device
    # Clone outside inference mode: inference tensors cannot take part in the probe's autograd.
    out = {k: v.clone() for k, v in _run_extraction(model, dataset, collate_fn, batch_size, device, desc).items()}
    if cache is not None and cache_key is not None:
        path = cache.save(cache_key, out)
        logger.info("%s: cached %s features at %s", desc, tuple(out["features"].shape), path)
    return out["features"], out["labels"]


# --------------------------------------------------------------------------------------------------
# The probe


@dataclass
class ProbeResult:
    """A fitted probe: `weight` (C, D) and `bias` (C,) act on raw (unstandardised) features."""

    weight: torch.Tensor
    bias: torch.Tensor
    l2: float
    validation_accuracy: float
    sweep: dict[float, float] = field(default_factory=dict)  # l2 -> validation accuracy

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        return (features @ self.weight.T + self.bias).argmax(-1)


def _fit_one(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float, init: Optional[tuple], max_iter: int
) -> tuple[torch.Tensor, torch.Tensor]:
    d = x.shape[1]
    weight = torch.zeros(num_classes, d, dtype=x.dtype) if init is None else init[0].clone()
    bias = torch.zeros(num_classes, dtype=x.dtype) if init is None else init[1].clone()
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=max_iter, history_size=20, tolerance_grad=1e-6, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = x @ weight.T + bias  # (N, C)
        loss = nn.functional.cross_entropy(logits, y) + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return weight.detach(), bias.detach()


def fit_linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    val_features: torch.Tensor,
    val_labels: torch.Tensor,
    num_classes: int,
    l2_grid: Sequence[float] = DEFAULT_L2_GRID,
    max_iter: int = 200,
    standardize: Literal["per_feature", "global"] = "per_feature",
) -> ProbeResult:
    """Multinomial logistic regression on frozen features, L2 strength chosen on the validation split.

    The objective for each `l2` in the grid is  mean CE(W z + b, y) + l2 / 2 * ||W||^2  over
    standardised features z = (x - mu) / sigma (mu, sigma from the training split). The best
    validation accuracy wins (ties go to the stronger regulariser, which comes first in the sweep).
    `standardize="global"` uses one sigma for all features (the overall std): for few-shot training
    sets (a handful of rows), per-feature sigmas are degenerate and blow up near-constant features.
    """
    if train_features.shape[0] == 0 or val_features.shape[0] == 0:
        raise ValueError("Linear probing needs non-empty train and validation features.")
    x = train_features.double()
    mean = x.mean(0)
    if standardize == "global":
        std = (x - mean).pow(2).mean().sqrt().clamp(min=1e-6).expand_as(mean)
    else:
        std = x.std(0, unbiased=False).clamp(min=1e-6)
    z_train = (x - mean) / std  # (N, D)
    z_val = (val_features.double() - mean) / std
    y_train = train_labels.long()
    y_val = val_labels.long()

    grid = sorted({float(v) for v in l2_grid}, reverse=True)
    best: Optional[tuple[float, float, torch.Tensor, torch.Tensor]] = None
    sweep: dict[float, float] = {}
    init = None
    for l2 in grid:
        weight, bias = _fit_one(z_train, y_train, num_classes, l2, init, max_iter)
        init = (weight, bias)
        accuracy = float(((z_val @ weight.T + bias).argmax(-1) == y_val).double().mean())
        sweep[l2] = accuracy
        logger.info("probe l2=%.1e validation accuracy=%.4f", l2, accuracy)
        if best is None or accuracy > best[1]:
            best = (l2, accuracy, weight, bias)
    assert best is not None
    l2, accuracy, weight, bias = best
    # Fold the standardisation in: W z + b = (W / sigma) x + (b - (W / sigma) mu).
    raw_weight = weight / std  # (C, D)
    raw_bias = bias - raw_weight @ mean  # (C,)
    return ProbeResult(raw_weight.float(), raw_bias.float(), l2, accuracy, sweep)


def load_probe_into_classifier(model: nn.Module, probe: ProbeResult) -> None:
    """Copy the probe into the model's final head layer (shapes must match)."""
    head = get_classifier(model)
    if tuple(head.weight.shape) != tuple(probe.weight.shape):
        raise ValueError(
            f"Probe weight {tuple(probe.weight.shape)} does not fit head {tuple(head.weight.shape)}."
        )
    with torch.no_grad():
        head.weight.copy_(probe.weight.to(head.weight.dtype))
        if head.bias is not None:
            head.bias.copy_(probe.bias.to(head.bias.dtype))


def probe_classification_model(
    model: nn.Module,
    splits: dict[str, Dataset],
    collate_fn: Callable,
    *,
    cache: Optional[FeatureCache],
    cache_identity: dict[str, Any],
    l2_grid: Sequence[float] = DEFAULT_L2_GRID,
    max_iter: int = 200,
    batch_size: int = 64,
) -> tuple[ProbeResult, dict[str, dict[str, float]]]:
    """Extract (or read cached) head-input features for every split, fit the probe on `train`, choose
    its L2 strength on `validation`, copy it into the model's head, and score each split.

    `cache_identity` names the model and preprocessing (see `describe_preprocessing` and
    `model_fingerprint`); each split adds its own `datasets` fingerprint to the key.
    Returns the probe and `{split: {"accuracy": ..., "f1": ...}}`.
    """
    from .metrics import compute_classification_metrics

    features: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for name, dataset in splits.items():
        key = FeatureCache.make_key(**cache_identity, split=name, data=dataset._fingerprint, rows=len(dataset))
        features[name] = extract_features(
            model, dataset, collate_fn, cache=cache, cache_key=key, batch_size=batch_size,
            desc=f"Extracting {name} features",
        )
    num_classes = get_classifier(model).out_features
    probe = fit_linear_probe(*features["train"], *features["validation"], num_classes, l2_grid, max_iter)
    load_probe_into_classifier(model, probe)
    scores = {
        name: compute_classification_metrics(probe.predict(x).numpy(), y.numpy()) for name, (x, y) in features.items()
    }
    return probe, scores
