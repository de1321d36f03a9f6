"""Pseudo-labels under per-class confidence thresholds: one mechanism for every kind of self-training (the probe's
self-training on cached features, FixMatch-style consistency training, target self-training in domain adaptation).

A single fixed threshold (FixMatch's 0.95) starves the classes the model is still learning: their confidences stay
below it, so they get no pseudo-labels and stay unlearned, and the pseudo-labelled rows drift towards the easy
classes. FlexMatch (Zhang et al. 2021, "curriculum pseudo labelling") scales each class's threshold by how many
unlabelled rows the model already predicts confidently as that class, so a class that is learned late is let in at a
lower threshold. `min_threshold` keeps a floor under that scaling: FlexMatch's thresholds start near zero, which is
right for a network trained for many thousand steps but lets a probe refitted a few times accept every guess.

Two class-balancing options against confirmation bias, for single-label rows (off by default): when the model is
wrong on most unlabelled rows it tends to predict one class for many of them, and training on those guesses makes
it predict that class even more. `distribution_alignment` (ReMixMatch, Berthelot et al. 2020) rescales each
prediction by `prior / mean prediction over the pool` and renormalises, so a class the model over-predicts loses
mass before its argmax and confidence are read. `class_quota` (class-balanced self-training, CBST, Zou et al. 2018)
caps each class's pseudo-labels at `class_quota * num_rows * prior_c` rows: a class's threshold is raised to the
confidence of its k-th most confident row in the pool.

Multi-label rows are scored label by label: a (row, label) target is kept when the probability is far enough from the
decision point on either side (`max(p, 1 - p)`), and each label has its own threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

__all__ = ["PseudoLabels", "ClassThresholds"]


@dataclass(frozen=True)
class PseudoLabels:
    """The targets kept for a batch of unlabelled rows.

    Attributes:
        targets: single-label: (N,) class ids; multi-label: (N, C) floats in {0, 1}.
        mask: which targets count: (N,) for single-label, (N, C) for multi-label (a row may keep some labels only).
        thresholds: (C,) the per-class thresholds they were selected with.
    """

    targets: torch.Tensor
    mask: torch.Tensor
    thresholds: torch.Tensor

    @property
    def rows(self) -> torch.Tensor:
        """Which rows keep at least one target, (N,) bool."""
        return self.mask if self.mask.dim() == 1 else self.mask.any(dim=1)

    @property
    def num_rows(self) -> int:
        return int(self.rows.sum())


class ClassThresholds:
    """Per-class confidence thresholds that follow how well each class is learned (FlexMatch).

    The state is each unlabelled row's latest confident prediction, so the thresholds reflect the whole pool even when
    the model sees it a batch at a time (pass `rows`, the batch's positions in the pool).

    Args:
        num_classes: classes (single-label) or labels (multi-label).
        num_rows: size of the unlabelled pool.
        threshold: the threshold of a fully learned class (FixMatch's tau).
        multi_label: score each label of a row separately.
        adaptive: False gives FixMatch's fixed `threshold` for every class.
        min_threshold: the lowest threshold any class gets.
        warmup: FlexMatch's warm-up: while most rows are still unconfident, the learning effect is measured against
            them (not only against the best-learned class), so thresholds rise as the pool is learned.
        distribution_alignment: single-label only: read each prediction after scaling it by `class_prior` / the
            mean of the latest predictions of the pool rows seen so far (ReMixMatch's distribution alignment).
            Keeps each row's latest prediction, `num_rows x num_classes` floats.
        class_quota: single-label only: at most `class_quota * num_rows * class_prior[c]` pool rows keep class c
            (CBST's class-balanced selection); None for no cap.
        class_prior: (C,) the class distribution the pool is expected to have (normalised here); uniform when None.
    """

    def __init__(
        self,
        num_classes: int,
        num_rows: int,
        threshold: float = 0.95,
        multi_label: bool = False,
        adaptive: bool = True,
        min_threshold: float = 0.5,
        warmup: bool = True,
        distribution_alignment: bool = False,
        class_quota: Optional[float] = None,
        class_prior: Optional[torch.Tensor] = None,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must lie in (0, 1], got {threshold}.")
        if not 0.0 <= min_threshold <= threshold:
            raise ValueError(f"min_threshold must lie in [0, threshold], got {min_threshold}.")
        if multi_label and (distribution_alignment or class_quota is not None):
            raise ValueError("distribution_alignment and class_quota balance single-label classes; not multi-label.")
        if class_quota is not None and not 0.0 < class_quota <= 1.0:
            raise ValueError(f"class_quota must lie in (0, 1], got {class_quota}.")
        prior = torch.full((num_classes,), 1.0) if class_prior is None else torch.as_tensor(class_prior).float()
        if prior.shape != (num_classes,) or not bool((prior > 0).all()):
            raise ValueError(f"class_prior must hold {num_classes} positive values, got {prior.tolist()}.")
        self.class_prior = prior / prior.sum()
        self.distribution_alignment = distribution_alignment
        self.class_quota = class_quota
        self.num_classes = num_classes
        self.num_rows = num_rows
        self.threshold = threshold
        self.multi_label = multi_label
        self.adaptive = adaptive
        self.min_threshold = min_threshold
        self.warmup = warmup
        # Single-label: the confidently predicted class of each row, -1 for none. Multi-label: (rows, labels) bools.
        if multi_label:
            self._confident = torch.zeros(num_rows, num_classes, dtype=torch.bool)
        else:
            self._confident = torch.full((num_rows,), -1, dtype=torch.long)
            # Each row's latest (aligned) predicted class and its confidence, -1 / 0 before its first visit.
            self._predicted = torch.full((num_rows,), -1, dtype=torch.long)
            self._confidence = torch.zeros(num_rows)
        # Each row's latest raw prediction (NaN before its first visit): the pool mean distribution alignment uses.
        self._latest = torch.full((num_rows, num_classes), float("nan")) if distribution_alignment else None

    def balance_config(self) -> dict[str, object]:
        """The class-balancing options in use, for results and cards; empty when neither is on."""
        if not self.distribution_alignment and self.class_quota is None:
            return {}
        return {
            "pseudo_label_distribution_alignment": self.distribution_alignment,
            "pseudo_label_class_quota": self.class_quota,
            "pseudo_label_class_prior": [round(float(p), 4) for p in self.class_prior],
        }

    def update(self, probabilities: torch.Tensor, rows: Optional[torch.Tensor] = None) -> None:
        """Record the latest predictions of `rows` (all rows, in order, when None)."""
        self._update(probabilities, rows)

    def _update(self, probabilities: torch.Tensor, rows: Optional[torch.Tensor]) -> torch.Tensor:
        """`update`; returns the probabilities the selection reads (aligned under distribution alignment)."""
        probabilities = probabilities.detach().float().cpu()
        rows = torch.arange(self.num_rows) if rows is None else rows.detach().long().cpu()
        if self.multi_label:
            self._confident[rows] = torch.maximum(probabilities, 1 - probabilities) > self.threshold
            return probabilities
        if self._latest is not None:
            self._latest[rows] = probabilities
            probabilities = self.align(probabilities)
        confidence, predicted = probabilities.max(dim=1)
        self._confident[rows] = torch.where(confidence > self.threshold, predicted, torch.full_like(predicted, -1))
        self._predicted[rows], self._confidence[rows] = predicted, confidence
        return probabilities

    def pool_mean(self) -> torch.Tensor:
        """(C,) the mean of the latest predictions of the rows seen so far (distribution alignment only)."""
        if self._latest is None:
            raise ValueError("pool_mean needs distribution_alignment=True.")
        seen = ~self._latest[:, 0].isnan()
        return self._latest[seen].mean(dim=0) if seen.any() else self.class_prior.clone()

    def align(self, probabilities: torch.Tensor) -> torch.Tensor:
        """ReMixMatch's distribution alignment: p * prior / pool mean, renormalised per row. `(N, C) -> (N, C)`."""
        aligned = probabilities * (self.class_prior / self.pool_mean().clamp_min(1e-6))
        return aligned / aligned.sum(dim=1, keepdim=True)

    def quota_thresholds(self) -> torch.Tensor:
        """(C,) the confidence of class c's k_c-th most confident pool row, k_c = ceil(quota * rows * prior_c);
        0 for a class predicted for k_c rows or fewer (its quota is not full)."""
        quota = torch.ceil(self.class_quota * self.num_rows * self.class_prior).long()
        cut = torch.zeros(self.num_classes)
        for c in range(self.num_classes):
            scores = self._confidence[self._predicted == c]
            if len(scores) > quota[c]:
                cut[c] = scores.topk(int(quota[c])).values[-1]
        return cut

    def learning_effect(self) -> torch.Tensor:
        """(C,) how many rows each class is confidently predicted for, scaled to [0, 1]."""
        if self.multi_label:
            counts = self._confident.sum(dim=0).float()
            unconfident = float((~self._confident.any(dim=1)).sum())
        else:
            known = self._confident[self._confident >= 0]
            counts = torch.bincount(known, minlength=self.num_classes).float()
            unconfident = float((self._confident < 0).sum())
        scale = max(float(counts.max()), unconfident if self.warmup else 0.0)
        return counts / scale if scale > 0 else torch.zeros(self.num_classes)

    def thresholds(self) -> torch.Tensor:
        """(C,) each class's current threshold: tau * beta / (2 - beta) (FlexMatch's convex mapping), floored, and
        raised to the quota threshold under `class_quota`."""
        if not self.adaptive:
            thresholds = torch.full((self.num_classes,), self.threshold)
        else:
            effect = self.learning_effect()
            thresholds = (self.threshold * effect / (2 - effect)).clamp(min=self.min_threshold)
        if self.class_quota is not None:
            thresholds = torch.maximum(thresholds, self.quota_thresholds())
        return thresholds

    def select(
        self,
        probabilities: torch.Tensor,
        rows: Optional[torch.Tensor] = None,
        decision_thresholds: Optional[torch.Tensor] = None,
    ) -> PseudoLabels:
        """Update the state with these predictions, then keep the targets above their class's threshold (read
        from the aligned predictions under distribution alignment).

        `decision_thresholds` (multi-label, (C,)): where a label's probability turns into "present"; 0.5 when None.
        """
        probabilities = self._update(probabilities, rows)
        thresholds = self.thresholds()
        if self.multi_label:
            cut = torch.full((self.num_classes,), 0.5) if decision_thresholds is None else decision_thresholds.cpu()
            targets = (probabilities >= cut).float()
            mask = torch.maximum(probabilities, 1 - probabilities) >= thresholds
        else:
            confidence, targets = probabilities.max(dim=1)
            mask = confidence >= thresholds[targets]
        return PseudoLabels(targets=targets, mask=mask, thresholds=thresholds)
