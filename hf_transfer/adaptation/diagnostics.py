"""How far apart two domains are in a model's feature space: the proxy A-distance.

Ben-David et al. bound the target error by the source error plus a divergence between the domains that
can be estimated by how well a classifier tells them apart. The proxy A-distance trains a linear domain
classifier (source = 0, target = 1) on features and measures its error ε on held-out rows:

    d_A = 2 (1 - 2 ε),

0 when the domains are indistinguishable (ε = 0.5), 2 when a line separates them (ε = 0). Here the
classifier is `hf_transfer.probing.fit_linear_probe` (multinomial logistic regression, L2 strength chosen on
a validation part), on balanced samples split 50 / 25 / 25 into train / validation / test, and ε is its test
error (clipped to 0.5, so d_A ∈ [0, 2]). Ganin et al. 2016 (sec. 5.2.4) report it before and after DANN.

References:
    Ben-David, Blitzer, Crammer & Pereira 2007, "Analysis of Representations for Domain Adaptation", NeurIPS.
    Ben-David et al. 2010, "A theory of learning from different domains", Machine Learning 79.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from datasets import Dataset, DatasetDict, concatenate_datasets
from torch import nn

from ..probing import extract_features, fit_linear_probe

__all__ = ["ProxyADistance", "proxy_a_distance", "compute_proxy_a_distance", "held_out_split"]

logger = logging.getLogger(__name__)


@dataclass
class ProxyADistance:
    """The proxy A-distance `value` = 2 (1 - 2 `error`), from a domain classifier tested on `num_test` rows."""

    value: float
    error: float
    num_samples: int  # rows per domain
    num_test: int


MIN_A_DISTANCE_ROWS = 8  # per domain: a domain classifier's train / validation / test split of them


def proxy_a_distance(
    source_features: torch.Tensor,
    target_features: torch.Tensor,
    *,
    max_samples: Optional[int] = None,
    seed: int = 0,
) -> ProxyADistance:
    """Proxy A-distance between two sets of feature vectors (N_s, D) and (N_t, D).

    Both sets are subsampled (seeded) to the same size n = min(N_s, N_t, max_samples) so that chance is 0.5.
    """
    n = min(len(source_features), len(target_features), max_samples or len(source_features))
    if n < MIN_A_DISTANCE_ROWS:
        raise ValueError(f"The proxy A-distance needs at least {MIN_A_DISTANCE_ROWS} rows per domain; got {n}.")
    generator = torch.Generator().manual_seed(seed)
    parts: dict[str, list[torch.Tensor]] = {"train": [], "validation": [], "test": []}
    labels: dict[str, list[torch.Tensor]] = {"train": [], "validation": [], "test": []}
    n_train, n_val = n // 2, n // 4
    for domain, features in enumerate((source_features, target_features)):
        rows = features[torch.randperm(len(features), generator=generator)[:n]].float().flatten(1)  # (n, D)
        for split, chunk in (
            ("train", rows[:n_train]),
            ("validation", rows[n_train : n_train + n_val]),
            ("test", rows[n_train + n_val :]),
        ):
            parts[split].append(chunk)
            labels[split].append(torch.full((len(chunk),), domain, dtype=torch.long))
    x = {split: torch.cat(chunks) for split, chunks in parts.items()}
    y = {split: torch.cat(chunks) for split, chunks in labels.items()}
    probe = fit_linear_probe(x["train"], y["train"], x["validation"], y["validation"], num_classes=2)
    error = float((probe.predict(x["test"]) != y["test"]).float().mean())
    error = min(error, 0.5)
    return ProxyADistance(value=2.0 * (1.0 - 2.0 * error), error=error, num_samples=n, num_test=len(y["test"]))


def compute_proxy_a_distance(
    model: nn.Module,
    source: Dataset,
    target: Dataset,
    collate_fn: Callable,
    *,
    max_samples: Optional[int] = 500,
    batch_size: int = 64,
    seed: int = 0,
    module_name: Optional[str] = None,
) -> ProxyADistance:
    """The proxy A-distance between `source` and `target` in the features that reach the input of `module_name`.

    `module_name` defaults to the head's final Linear; recipes pass the probe's feature layer
    (`hf_transfer.probing.locate_probe_features`), whose input pretrained weights alone compute, so the distance
    before training is not measured through a random head layer. Both data sets are processed, labelled splits
    (the class labels are not used, only the domain). At most `max_samples` rows of each are embedded.
    """
    features = []
    for name, dataset in (("source", source), ("target", target)):
        if max_samples is not None and len(dataset) > max_samples:
            order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:max_samples]
            dataset = dataset.select(sorted(order.tolist()))
        x, _ = extract_features(
            model,
            dataset,
            collate_fn,
            cache=None,
            cache_key=None,
            batch_size=batch_size,
            desc=f"A-distance: {name} features",
            module_name=module_name,
        )
        features.append(x)
    result = proxy_a_distance(features[0], features[1], max_samples=max_samples, seed=seed)
    logger.info(
        "Proxy A-distance %.3f (domain classifier test error %.3f on %d rows)",
        result.value,
        result.error,
        result.num_test,
    )
    return result


def held_out_split(dataset: DatasetDict) -> Dataset:
    """The rows of a domain that no model trains on: `validation` and `test` together (raw, unprocessed)."""
    splits = [dataset[split] for split in ("validation", "test") if split in dataset]
    if not splits:
        raise ValueError(f"No validation or test split to measure the A-distance on (splits: {list(dataset)}).")
    return splits[0] if len(splits) == 1 else concatenate_datasets(splits)
