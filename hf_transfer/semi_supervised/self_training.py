"""Self-training of the cached-feature probe: fit on the labelled rows, pseudo-label the unlabelled pool where the
probe is confident (per-class thresholds, `hf_transfer.pseudo_labels`), refit on labelled + pseudo-labelled rows,
repeat (Scudder 1965; the per-class thresholds of FlexMatch, Zhang et al. 2021).

Only the head moves, so a round is one fit on features already in memory: seconds, even for thousands of pool rows.
The L2 strength stays the one chosen on the labelled rows (by validation or cross-validation): choosing it again on
rows labelled by the probe itself would reward the probe for agreeing with itself. A multi-label pool row joins the
refit when every one of its labels is confidently present or absent: the one-vs-rest probe fits all labels of a row.

Single-label pool predictions are aligned to the labelled rows' class distribution before thresholding
(`align_distribution`, ReMixMatch's distribution alignment, Berthelot et al. 2019): without it a class that wins a few
more pseudo-labels in one round shifts the refit probe's bias towards itself, wins more in the next, and within a few
rounds takes the whole pool (tests/test_semi_supervised.py shows it on two clusters). The rows that pass are then
balanced to that distribution too (`balance_to_prior`, the class-balanced selection of CBST, Zou et al. 2018): each
class keeps its most confident rows up to the share the class with the fewest passing rows allows. A probe fitted on
a handful of rows is confident about the easy classes only (on tweets: positive and negative, hardly ever neutral);
refitted on their pseudo-labels it stops predicting the others (benchmarks/RESULTS.md, "Unlabelled rows").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from ..constants import SEMI_SUPERVISED_PREFIX
from ..pseudo_labels import ClassThresholds

__all__ = [
    "ProbeSelfTraining",
    "SelfTrainingReport",
    "align_distribution",
    "balance_to_prior",
    "self_train_probe",
    "probe_probabilities",
]

logger = logging.getLogger(__name__)

Split = tuple[torch.Tensor, torch.Tensor]


@dataclass
class SelfTrainingReport:
    """What self-training did, for the results and the card.

    Attributes:
        unlabelled_rows: rows in the pool.
        pseudo_labelled: pool rows pseudo-labelled in each round.
        trained_on: pool rows the returned probe was refitted with (0: it is the labelled-only probe).
        thresholds: each round's per-class thresholds.
        pseudo_label_accuracy: each round's share of correct pseudo-labels (of labels, for multi-label), when the
            pool's true labels are known (a share of train set aside); empty otherwise.
    """

    unlabelled_rows: int
    pseudo_labelled: list[int] = field(default_factory=list)
    trained_on: int = 0
    thresholds: list[list[float]] = field(default_factory=list)
    pseudo_label_accuracy: list[float] = field(default_factory=list)

    def metrics(self) -> dict[str, Any]:
        """The results' keys (`semi_supervised_*`)."""
        out: dict[str, Any] = {
            "unlabelled_samples": self.unlabelled_rows,
            "rounds": len(self.pseudo_labelled),
            "pseudo_labelled_samples": self.trained_on,
            "pseudo_labelled_per_round": list(self.pseudo_labelled),
            "thresholds": [round(t, 4) for t in self.thresholds[-1]] if self.thresholds else [],
        }
        if self.pseudo_label_accuracy:
            out["pseudo_label_accuracy"] = self.pseudo_label_accuracy[-1]
            out["pseudo_label_accuracy_per_round"] = list(self.pseudo_label_accuracy)
        return {f"{SEMI_SUPERVISED_PREFIX}{key}": value for key, value in out.items()}


def probe_probabilities(probe: Any, features: torch.Tensor, multi_label: bool) -> torch.Tensor:
    """(N, C) class probabilities (softmax) or label probabilities (sigmoid) of a fitted probe."""
    logits = features.float() @ probe.weight.T.float() + probe.bias.float()
    return torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)


def align_distribution(probabilities: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """(N, C) class probabilities rescaled so that their mean over the rows moves to `prior` (C,), renormalised per
    row: p * prior / mean(p), as ReMixMatch aligns unlabelled predictions to the labelled class distribution."""
    aligned = probabilities * prior / probabilities.mean(dim=0).clamp(min=1e-8)
    return aligned / aligned.sum(dim=1, keepdim=True)


def balance_to_prior(
    kept: torch.Tensor, targets: torch.Tensor, confidence: torch.Tensor, prior: torch.Tensor
) -> torch.Tensor:
    """(N,) which of the `kept` rows stay so that the classes' counts follow `prior` (C,): class c keeps its
    `floor(prior_c * min_k(count_k / prior_k))` most `confidence`-t rows (classes with prior 0 keep none). One class
    without a passing row therefore keeps every row out: nothing is learned rather than a lopsided set."""
    present = prior > 0
    counts = torch.bincount(targets[kept], minlength=len(prior)).float()
    scale = (counts[present] / prior[present]).min()
    quota = torch.where(present, (scale * prior).floor(), torch.zeros_like(prior)).long()
    out = torch.zeros_like(kept)
    for label in range(len(prior)):
        rows = (kept & (targets == label)).nonzero().flatten()
        out[rows[confidence[rows].argsort(descending=True)[: quota[label]]]] = True
    return out


def self_train_probe(
    probe: Any,
    refit: Callable[[Split], Any],
    labelled: Split,
    unlabelled: torch.Tensor,
    thresholds: ClassThresholds,
    rounds: int,
    hidden_labels: Optional[torch.Tensor] = None,
    align: bool = True,
    balance: bool = True,
) -> tuple[Any, SelfTrainingReport]:
    """Self-train `probe` (fitted on `labelled`) with the pool's features `unlabelled` (N, D).

    `refit(split)` fits the probe on `(features, labels)` with the L2 already chosen. `thresholds` holds the pool's
    per-class state (`num_rows` = N). `hidden_labels` (N,) or (N, C): the pool's true labels, used only to report
    pseudo-label accuracy. `align`: align single-label predictions to the labelled class distribution
    (`align_distribution`) before thresholding; `balance`: balance the rows that pass to it (`balance_to_prior`).
    Both are single-label only. Stops early when a round keeps no row or the same rows with the same labels as the last.
    Returns the last probe fitted (the labelled-only `probe` when no row was ever kept) and the report.
    """
    x, y = labelled
    report = SelfTrainingReport(unlabelled_rows=int(unlabelled.shape[0]))
    previous: Optional[tuple[torch.Tensor, torch.Tensor]] = None
    single = not thresholds.multi_label
    prior = torch.bincount(y.long(), minlength=thresholds.num_classes).float() / len(y) if single else None
    for round_ in range(1, rounds + 1):
        probabilities = probe_probabilities(probe, unlabelled, thresholds.multi_label)
        if single and align:
            probabilities = align_distribution(probabilities, prior)
        pseudo = thresholds.select(probabilities)
        rows = pseudo.mask.all(dim=1) if thresholds.multi_label else pseudo.mask
        if single and balance:
            rows = balance_to_prior(rows, pseudo.targets, probabilities.max(dim=1).values, prior)
        kept = rows.nonzero().flatten()
        targets = pseudo.targets[kept]
        report.pseudo_labelled.append(int(kept.numel()))
        report.thresholds.append(pseudo.thresholds.tolist())
        if hidden_labels is not None and kept.numel():
            truth = hidden_labels[kept].to(targets.dtype)
            report.pseudo_label_accuracy.append(float((targets == truth).float().mean()))
        logger.info(
            "self-training round %d: %d of %d pool rows pseudo-labelled (thresholds %s)",
            round_,
            kept.numel(),
            unlabelled.shape[0],
            [round(t, 3) for t in pseudo.thresholds.tolist()],
        )
        if kept.numel() == 0:
            break
        if previous is not None and torch.equal(previous[0], kept) and torch.equal(previous[1], targets):
            break  # the same pseudo-labels refit the same probe
        previous = (kept, targets)
        report.trained_on = int(kept.numel())
        probe = refit((torch.cat([x, unlabelled[kept].to(x.dtype)]), torch.cat([y, targets.to(y.dtype)])))
    return probe, report


class ProbeSelfTraining:
    """The `self_train` step `probe_classification_model` calls: the run's settings around `self_train_probe`, its
    report kept for the results (`report`, None until it ran).

    Args:
        args: the run's `SemiSupervisedArguments`.
        multi_label: the probe is one-vs-rest (several labels per row).
        hidden_labels: the pool's labels are true ones (a share of train set aside): score the pseudo-labels.
    """

    def __init__(self, args: Any, multi_label: bool, hidden_labels: bool) -> None:
        self.args = args
        self.multi_label = multi_label
        self.hidden_labels = hidden_labels
        self.report: Optional[SelfTrainingReport] = None

    def __call__(self, probe: Any, refit: Callable[[Split], Any], labelled: Split, unlabelled: Split) -> Any:
        features, labels = unlabelled
        thresholds = ClassThresholds(
            num_classes=int(probe.weight.shape[0]),
            num_rows=int(features.shape[0]),
            threshold=self.args.pseudo_label_threshold,
            multi_label=self.multi_label,
            adaptive=self.args.adaptive,
            min_threshold=self.args.pseudo_label_min_threshold,
        )
        probe, self.report = self_train_probe(
            probe,
            refit,
            labelled,
            features,
            thresholds,
            self.args.self_training_rounds,
            hidden_labels=labels if self.hidden_labels else None,
            align=self.args.distribution_alignment,
            balance=self.args.balance_pseudo_labels,
        )
        return probe
