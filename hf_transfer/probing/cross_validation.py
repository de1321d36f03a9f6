"""The probe without a validation split: the L2 strength chosen by k-fold cross-validation on the training rows, then
the probe refitted on all of them (as scikit-learn's `LogisticRegressionCV` does).

Holding out part of a few-shot training set to choose one number throws away shots the head could have learned
from; cross-validation spends every row on both. The folds are stratified by class when each row has one class,
grouped by sentence for a per-token probe (a long sentence's windows stay in one fold), plain otherwise. Besides the
refitted probe, each row gets the logits of the fold that did not train on it, so the run reports honest
out-of-fold validation metrics (and multi-label decision thresholds are chosen on them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

from ..errors import DataError

__all__ = ["DEFAULT_FOLDS", "CrossValidation", "cross_validate_probe", "held_out_rows"]

logger = logging.getLogger(__name__)

DEFAULT_FOLDS = 5

Split = tuple[torch.Tensor, torch.Tensor]
# fit(train, validation, l2_grid, held_out_rows) -> a fitted probe (`ProbeResult`, `OneVsRestProbe`, `RidgeProbe`);
# `held_out_rows` are the dataset rows of `validation` (a per-token probe scores whole sentences from them).
FoldFit = Callable[[Split, Split, Sequence[float], np.ndarray], Any]


@dataclass
class CrossValidation:
    """A probe chosen by cross-validation: `probe` is fitted on every row with the chosen `l2`; its validation score
    and loss are the folds' mean at that `l2`; `out_of_fold_logits` (rows, outputs) come from the fold that held each
    row out."""

    probe: Any
    l2: float
    folds: int
    out_of_fold_logits: torch.Tensor


def held_out_rows(
    num_rows: int,
    folds: int,
    seed: int,
    classes: Optional[np.ndarray] = None,
    groups: Optional[np.ndarray] = None,
    class_names: Optional[Sequence[str]] = None,
) -> list[np.ndarray]:
    """The dataset rows each fold holds out: stratified by `classes` (one class id per row; `class_names` name them
    in errors), grouped by `groups` (rows of one group stay together), or plain; `folds` is lowered to what the rows
    allow (at least 2)."""
    rows = np.arange(num_rows)
    if classes is not None:
        names, counts = np.unique(classes, return_counts=True)
        if counts.min() < 2:
            rare = int(names[counts.argmin()])
            raise DataError(
                f"Class {class_names[rare] if class_names else rare!r} has {counts.min()} training row: choosing the probe's L2 by "
                "cross-validation (there is no validation split) needs 2 rows of every class. Give a "
                "--validation_file (or --validation_split_percentage), or more rows of that class."
            )
        splitter = StratifiedKFold(min(folds, int(counts.min())), shuffle=True, random_state=seed)
        return [held for _, held in splitter.split(rows, classes)]
    if groups is not None:
        count = len(np.unique(groups))
        _require_two(count, "sentences")
        splitter = GroupKFold(min(folds, count), shuffle=True, random_state=seed)
        return [held for _, held in splitter.split(rows, groups=groups)]
    _require_two(num_rows, "rows")
    splitter = KFold(min(folds, num_rows), shuffle=True, random_state=seed)
    return [held for _, held in splitter.split(rows)]


def _require_two(count: int, what: str) -> None:
    if count < 2:
        raise DataError(
            f"Cross-validating the probe (there is no validation split) needs at least 2 training {what}; got "
            f"{count}. Give a --validation_file, or more rows."
        )


def cross_validate_probe(
    fit: FoldFit,
    features: Split,
    held_out: Sequence[np.ndarray],
    positions: Callable[[np.ndarray], np.ndarray],
    l2_grid: Sequence[float],
    criterion: str = "loss_1se",
) -> CrossValidation:
    """Choose L2 on the folds, refit on all rows, and collect the out-of-fold logits at the chosen L2.

    `criterion`: `loss_1se` (default), the strongest L2 whose mean validation loss is within one standard error
    (over the folds) of the lowest, the one-standard-error rule of Hastie, Tibshirani and Friedman (glmnet's
    `lambda.1se`); `loss`, the lowest mean loss (ties: the better score); `score`, the best mean score (ties: the
    lower loss). Losses, not scores: a fold of a few-shot set holds a handful of rows, whose accuracy moves in steps
    of 20% and ties across most of the grid, while their log-loss still ranks the strengths; and on so few rows the
    strongest penalty the folds cannot tell apart from the best generalises best (benchmarks/RESULTS.md, "The probe
    on few rows"). On many rows the standard error shrinks and the rule is the lowest loss.

    `held_out`: the dataset rows of each fold (`held_out_rows`); `positions(rows)`: their rows in `features` (the
    same rows, or each sentence's tagged tokens for a per-token probe). An L2 counts if every fold tried it (a fold's
    sweep may extend the grid or stop early)."""
    x, y = features
    num_rows = len(np.concatenate(held_out))
    every_row = np.arange(num_rows)
    splits = []
    for rows in held_out:
        train_rows = np.setdiff1d(every_row, rows)
        kept, left = torch.as_tensor(positions(train_rows)), torch.as_tensor(positions(rows))
        splits.append(((x[kept], y[kept]), (x[left], y[left]), rows, left))
    scores: dict[float, list[tuple[float, float]]] = {}
    for fold, (train, validation, rows, _) in enumerate(splits):
        probe = fit(train, validation, l2_grid, rows)
        for l2, score in probe.sweep.items():
            scores.setdefault(l2, []).append((score, probe.sweep_loss[l2]))
        logger.info("probe fold %d/%d: best l2=%.1e score=%.4f", fold + 1, len(splits), probe.l2, probe.sweep[probe.l2])
    complete = {l2: np.asarray(values) for l2, values in scores.items() if len(values) == len(splits)}
    tried = {l2: values.mean(axis=0) for l2, values in complete.items()}  # l2 -> (mean score, mean loss)
    if criterion == "loss_1se":
        best = min(tried, key=lambda value: tried[value][1])
        standard_error = complete[best][:, 1].std(ddof=1) / np.sqrt(len(splits))
        l2 = max(value for value in tried if tried[value][1] <= tried[best][1] + standard_error)
    elif criterion == "loss":
        l2 = max(tried, key=lambda value: (-tried[value][1], tried[value][0]))
    else:
        l2 = max(tried, key=lambda value: (tried[value][0], -tried[value][1]))
    score, loss = (float(v) for v in tried[l2])
    logger.info("probe: l2=%.1e chosen by %d-fold cross-validation (mean score %.4f)", l2, len(splits), score)

    out_of_fold: Optional[torch.Tensor] = None
    for train, validation, rows, left in splits:
        fold_probe = fit(train, validation, [l2], rows)
        logits = validation[0].float() @ fold_probe.weight.T + fold_probe.bias
        if out_of_fold is None:
            out_of_fold = torch.empty(x.shape[0], logits.shape[1])
        out_of_fold[left] = logits
    probe = fit(features, features, [l2], every_row).scored(score, loss, len(splits))
    return CrossValidation(probe, l2, len(splits), out_of_fold)
