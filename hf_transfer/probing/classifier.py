"""`probe_classification_model`: a stock classification model probed on its frozen pretrained features, the probe
written into its head, every split scored: what finetune's `linear_probe` (and LP-FT's first stage) runs."""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from datasets import Dataset
from torch import nn

from ..constants import DEFAULT_L2_GRID
from ..metrics import DecisionThresholds, choose_decision_thresholds, compute_task_metrics
from ..metrics.token_classification import SENTENCE_COLUMN, SentenceWindows
from ..models.heads import get_classifier, head_module_names
from ..models.thresholds import set_decision_thresholds
from ..processing import IGNORED_LABEL, sample_inputs
from ..tasks import TASKS
from .cache import FeatureCache
from .cross_validation import DEFAULT_FOLDS, CrossValidation, cross_validate_probe, held_out_rows
from .features import extract_features
from .head_layout import HIDDEN_SHIFTS, locate_probe_features, replay_head, set_hidden_layers
from .logistic import ProbeResult, load_probe_into_classifier
from .one_vs_rest import OneVsRestProbe
from .ridge import RidgeProbe

Probe = ProbeResult | OneVsRestProbe | RidgeProbe
Split = tuple[torch.Tensor, torch.Tensor]
# self_train(probe, refit, labelled, unlabelled) -> the probe to keep (`hf_transfer.semi_supervised`); the unlabelled
# rows' labels are whatever their dataset holds (placeholders, or hidden labels that only score pseudo-labels)
SelfTrain = Callable[[Probe, Callable[[Split], Probe], Split, Split], Probe]
UNLABELLED = "unlabelled"  # the unlabelled rows' key among the extracted features

__all__ = ["probe_classification_model"]

# The token probe's sweep stops after this many weaker L2 strengths in a row (`sweep_l2`).
TOKEN_PROBE_PATIENCE = 2


def _tagged_lengths(dataset: Dataset) -> list[int]:
    """How many tagged tokens (label != -100) each row has: the rows of a token probe's flat features."""
    return [sum(tag != IGNORED_LABEL for tag in row) for row in dataset["labels"]]


def _entity_f1_scorer(model: nn.Module, validation: Dataset) -> Callable[[torch.Tensor, torch.Tensor], float]:
    """Entity-level F1 (seqeval) of flat per-token logits, put back into validation's rows and whole sentences."""
    names = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    cuts = np.cumsum(_tagged_lengths(validation))[:-1]
    windows = SentenceWindows.of(validation)

    def score(logits: torch.Tensor, labels: torch.Tensor) -> float:
        rows = np.split(logits.detach().cpu().numpy(), cuts), np.split(labels.cpu().numpy(), cuts)
        return compute_task_metrics("token_classification", *rows, label_names=names, windows=windows)["f1"]

    return score


def _held_out_folds(
    train: Dataset, labels: torch.Tensor, label_names: Sequence[str], task_entry: Any, folds: int, seed: int
) -> list[np.ndarray]:
    """The train rows each cross-validation fold holds out: stratified when a row has one class, a long sentence's
    windows kept together for a per-token probe."""
    if task_entry.one_class_per_row:
        return held_out_rows(len(train), folds, seed, classes=labels.numpy(), class_names=label_names)
    if task_entry.per_token and SENTENCE_COLUMN in train.column_names:
        return held_out_rows(len(train), folds, seed, groups=np.asarray(train[SENTENCE_COLUMN]))
    return held_out_rows(len(train), folds, seed)


def _feature_positions(train: Dataset, per_token: bool) -> Callable[[np.ndarray], np.ndarray]:
    """Where dataset rows sit among the feature rows: the same index, or a per-token probe's run of tagged tokens."""
    if not per_token:
        return lambda rows: rows
    lengths = np.asarray(_tagged_lengths(train))
    ends = np.cumsum(lengths)
    starts = ends - lengths
    return lambda rows: np.concatenate([np.arange(starts[r], ends[r]) for r in rows] or [np.zeros(0, dtype=int)])


logger = logging.getLogger(__name__)


def _fold_scores(probe: Probe) -> tuple[float, float, int]:
    """A cross-validated probe's (score, loss, folds), to carry over to a refit of it."""
    return probe.selection_key[0], -probe.selection_key[1], probe.validation_folds


def probe_classification_model(
    model: nn.Module,
    splits: dict[str, Dataset],
    collate_fn: Callable,
    *,
    cache: Optional[FeatureCache],
    cache_identity: dict[str, Any],
    new_modules: Optional[Sequence[str]] = None,
    l2_grid: Sequence[float] = DEFAULT_L2_GRID,
    max_iter: int = 200,
    batch_size: int = 64,
    task: str = "single_label",
    across_processes: bool = False,
    cross_validation_folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    unlabelled: Optional[Dataset] = None,
    self_train: Optional[SelfTrain] = None,
) -> tuple[Probe, dict[str, dict[str, float]]]:
    """Probe `model` on frozen pretrained features and write the result into its head; score each split.

    Features are the input of the first newly initialised layer (`locate_probe_features`), so they come from
    pretrained weights only and are cached under a key that names that layer. When the head has hidden new
    layers, they are set to a fixed map of those features (`set_hidden_layers`, the shift chosen on
    validation) and the probe is fitted on what the final Linear then sees: the saved model computes exactly
    the probe. `new_modules` come from the loading report (`TransferModel.new_modules`); without it the head
    found from the module tree counts as new. `cache_identity` names the model and preprocessing; each split
    adds its `datasets` fingerprint. `task`: `single_label` fits the logistic probe, `multi_label` one logistic
    regression per label (`hf_transfer.probing.one_vs_rest`; decision thresholds are then chosen on validation and
    recorded on the model's config), `regression` the ridge probe (`hf_transfer.probing.ridge`; the head then
    predicts raw units). `across_processes`: every process of the run calls this; each extracts a share of the rows
    (`extract_features`) and fits the same probe on the gathered features. Without a `validation` split the L2 is
    chosen by `cross_validation_folds`-fold cross-validation on train (folds drawn with `seed`), the probe refitted on
    every train row, and the `validation` scores are out-of-fold (`hf_transfer.probing.cross_validation`). Returns the probe and each split's task metrics (`{split: {"accuracy": ..., "f1": ...}}`,
    or micro / macro / per-label F1 and mAP, or RMSE, MAE, R², Pearson, Spearman).

    `unlabelled` rows (their features extracted and cached like a split's, never scored) are handed with the fitted
    probe to `self_train(probe, refit, labelled, unlabelled)`, which returns the probe to keep; `refit` fits
    on a `(features, labels)` split with the L2 already chosen (`hf_transfer.semi_supervised.self_training`). Under
    cross-validation the out-of-fold logits stay the labelled-only probe's (they choose multi-label thresholds).
    """
    new = list(new_modules) if new_modules is not None else head_module_names(model)
    device = next(model.parameters()).device
    sample = sample_inputs(splits["train"], collate_fn, device)
    layout = locate_probe_features(model, new, sample)
    if layout.has_hidden_layers:
        logger.info(
            "Probe features: input of %s; hidden head layers %s set from them", layout.feature_module, layout.hidden
        )

    features: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    extracted = {**splits, UNLABELLED: unlabelled} if unlabelled is not None else splits
    for name, dataset in extracted.items():
        key = FeatureCache.make_key(
            **cache_identity,
            model_class=type(model).__name__,
            new_modules=sorted(new),
            feature_module=layout.feature_module,
            split=name,
            data=dataset._fingerprint,
            rows=len(dataset),
        )
        features[name] = extract_features(
            model,
            dataset,
            collate_fn,
            cache=cache,
            cache_key=key,
            batch_size=batch_size,
            desc=f"Extracting {name} features",
            module_name=layout.feature_module,
            across_processes=across_processes,
        )
    num_classes = get_classifier(model).out_features
    label_names = [model.config.id2label[i] for i in range(num_classes)]  # classes, tags, or target names

    task_entry = TASKS.get(task)
    cross_validates = "validation" not in splits  # no validation rows: every train row serves both (see module)
    scored_rows = splits["train"] if cross_validates else splits["validation"]  # whose validation scores we report

    def fit_split(train: Split, validation: Split, grid: Sequence[float], rows: Optional[np.ndarray] = None) -> Probe:
        # A per-token probe chooses L2 on validation entity F1 (every token is a row: it stops early).
        selection = {}
        if task_entry.per_token:
            rows_scored = splits["validation"] if rows is None else splits["train"].select(rows)
            selection = {"score_fn": _entity_f1_scorer(model, rows_scored), "patience": TOKEN_PROBE_PATIENCE}
        return task_entry.probe(
            train, validation, num_classes=num_classes, l2_grid=grid, max_iter=max_iter, **selection
        )

    folds = (
        _held_out_folds(splits["train"], features["train"][1], label_names, task_entry, cross_validation_folds, seed)
        if cross_validates
        else None
    )

    def fit(head_features: dict[str, Split]) -> tuple[Probe, Optional[CrossValidation]]:
        if not cross_validates:
            return fit_split(head_features["train"], head_features["validation"], l2_grid), None
        positions = _feature_positions(splits["train"], task_entry.per_token)
        chosen = cross_validate_probe(fit_split, head_features["train"], folds, positions, l2_grid)
        return chosen.probe, chosen

    if not layout.has_hidden_layers:
        head_features = features
        probe, cross_validation = fit(head_features)
    else:
        best = None
        for shift in HIDDEN_SHIFTS:
            set_hidden_layers(model, layout, features["train"][0], shift)
            candidate = {n: (replay_head(model, layout, x, sample, batch_size), y) for n, (x, y) in features.items()}
            probe, cross_validation = fit(candidate)
            logger.info("hidden shift %.1f: validation score %.4f", shift, probe.selection_key[0])
            if best is None or probe.selection_key > best[1].selection_key:
                best = (shift, probe, candidate, cross_validation)
        shift, probe, head_features, cross_validation = best
        set_hidden_layers(model, layout, features["train"][0], shift)
    if unlabelled is not None:
        pool = head_features.pop(UNLABELLED)
        if self_train is not None:
            validation = head_features["train"] if cross_validates else head_features["validation"]
            kept = self_train(
                probe,
                lambda split: fit_split(split, validation, [probe.l2]),
                head_features["train"],
                pool,
            )
            # Under cross-validation the folds' scores describe the labelled-only probe, and say so.
            probe = kept.scored(*_fold_scores(probe)) if cross_validation is not None else kept
    load_probe_into_classifier(model, probe)
    classifier = get_classifier(model)
    with torch.inference_mode():  # what the saved model computes
        logits = {
            name: classifier(x.to(device=device, dtype=classifier.weight.dtype)).float().cpu().numpy()
            for name, (x, _) in head_features.items()
        }
    references = {name: y.numpy() for name, (_, y) in head_features.items()}
    if cross_validation is not None:  # each train row scored by the fold that held it out
        logits["validation"] = cross_validation.out_of_fold_logits.numpy()
        references["validation"] = references["train"]
    thresholds: Optional[DecisionThresholds] = None
    if task_entry.decision == "thresholds":
        thresholds = choose_decision_thresholds(logits["validation"], references["validation"])
        set_decision_thresholds(model, thresholds)
    if task_entry.per_token:  # the tagged tokens of each row, in row order: back into rows
        for name in logits:
            cuts = np.cumsum(_tagged_lengths(scored_rows if name == "validation" else splits[name]))[:-1]
            logits[name] = np.split(logits[name], cuts)
            references[name] = np.split(references[name], cuts)
    scores = {  # token classification: whole sentences, a long one's windows put back together
        name: compute_task_metrics(
            task,
            logits[name],
            references[name],
            thresholds,
            label_names,
            SentenceWindows.of(scored_rows if name == "validation" else splits[name]),
        )
        for name in logits
    }
    return probe, scores
