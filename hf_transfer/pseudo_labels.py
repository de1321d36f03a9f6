"""Pseudo-labels under per-class confidence thresholds: one mechanism for every kind of self-training (the probe's
self-training on cached features, FixMatch-style consistency training, target self-training in domain adaptation).

A single fixed threshold (FixMatch's 0.95) starves the classes the model is still learning: their confidences stay
below it, so they get no pseudo-labels and stay unlearned, and the pseudo-labelled rows drift towards the easy
classes. FlexMatch (Zhang et al. 2021, "curriculum pseudo labelling") scales each class's threshold by how many
unlabelled rows the model already predicts confidently as that class, so a class that is learned late is let in at a
lower threshold. `min_threshold` keeps a floor under that scaling: FlexMatch's thresholds start near zero, which is
right for a network trained for many thousand steps but lets a probe refitted a few times accept every guess.

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
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must lie in (0, 1], got {threshold}.")
        if not 0.0 <= min_threshold <= threshold:
            raise ValueError(f"min_threshold must lie in [0, threshold], got {min_threshold}.")
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

    def update(self, probabilities: torch.Tensor, rows: Optional[torch.Tensor] = None) -> None:
        """Record the latest predictions of `rows` (all rows, in order, when None)."""
        probabilities = probabilities.detach().float().cpu()
        rows = torch.arange(self.num_rows) if rows is None else rows.detach().long().cpu()
        if self.multi_label:
            self._confident[rows] = torch.maximum(probabilities, 1 - probabilities) > self.threshold
        else:
            confidence, predicted = probabilities.max(dim=1)
            self._confident[rows] = torch.where(confidence > self.threshold, predicted, torch.full_like(predicted, -1))

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
        """(C,) each class's current threshold: tau * beta / (2 - beta) (FlexMatch's convex mapping), floored."""
        if not self.adaptive:
            return torch.full((self.num_classes,), self.threshold)
        effect = self.learning_effect()
        return (self.threshold * effect / (2 - effect)).clamp(min=self.min_threshold)

    def select(
        self,
        probabilities: torch.Tensor,
        rows: Optional[torch.Tensor] = None,
        decision_thresholds: Optional[torch.Tensor] = None,
    ) -> PseudoLabels:
        """Update the state with these predictions, then keep the targets above their class's threshold.

        `decision_thresholds` (multi-label, (C,)): where a label's probability turns into "present"; 0.5 when None.
        """
        self.update(probabilities, rows)
        thresholds = self.thresholds()
        probabilities = probabilities.detach().float().cpu()
        if self.multi_label:
            cut = torch.full((self.num_classes,), 0.5) if decision_thresholds is None else decision_thresholds.cpu()
            targets = (probabilities >= cut).float()
            mask = torch.maximum(probabilities, 1 - probabilities) >= thresholds
        else:
            confidence, targets = probabilities.max(dim=1)
            mask = confidence >= thresholds[targets]
        return PseudoLabels(targets=targets, mask=mask, thresholds=thresholds)
