"""How sure the probe fitted on the labelled rows is of each pool row, read the way its task reads outputs.

One entry per task whose probe gives class probabilities (`PROBE_READINGS`, keyed by the task's name):

- `single_label`: softmax; margin = gap between the two most probable classes, entropy of the distribution, and the
  gradient residual `p - onehot(argmax p)` that BADGE multiplies with the features.
- `multi_label`: one sigmoid per label against its decision threshold (chosen on the probe's out-of-fold outputs,
  as the saved probe's are); margin = distance of the closest label to its threshold, entropy = mean binary entropy,
  residual `p - [p >= threshold]`.

A regression probe predicts a number with no spread and token classification labels words, not rows: neither has an
entry, so uncertainty strategies refuse them with one line (`reading_for`); diversity strategies still apply.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from .._registry import Registry
from ..constants import DEFAULT_L2_GRID
from ..errors import ConfigError, DataError
from ..tasks import TASKS

__all__ = ["ProbeOutputs", "ProbeReading", "PROBE_READINGS", "fit_selection_probe", "reading_for"]

logger = logging.getLogger(__name__)

_EPS = 1e-12


@dataclass
class ProbeOutputs:
    """The probe's probabilities `(N, C)` for the pool rows, read by its task's `reading`."""

    probabilities: np.ndarray
    label_names: list[str]
    reading: "ProbeReading"
    thresholds: Optional[np.ndarray] = None  # (C,) multi-label decision thresholds

    def margin(self) -> tuple[np.ndarray, list[str]]:
        """Uncertainty per row (higher: less sure) and a reason line per row."""
        return self.reading.margin(self)

    def entropy(self) -> tuple[np.ndarray, list[str]]:
        return self.reading.entropy(self)

    def residual(self) -> np.ndarray:
        """`(N, C)`: the last layer's loss gradient per logit if the predicted label were the truth; times the
        features, BADGE's gradient embedding."""
        return self.reading.residual(self)


@dataclass(frozen=True)
class ProbeReading:
    """How one task's probe logits become probabilities, margins, entropies and BADGE residuals."""

    name: str  # the task's name
    probabilities: Callable[[np.ndarray], np.ndarray]
    margin: Callable[[ProbeOutputs], tuple[np.ndarray, list[str]]]
    entropy: Callable[[ProbeOutputs], tuple[np.ndarray, list[str]]]
    residual: Callable[[ProbeOutputs], np.ndarray]
    needs_thresholds: bool = False


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(1, keepdims=True)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def _single_margin(outputs: ProbeOutputs) -> tuple[np.ndarray, list[str]]:
    p, names = outputs.probabilities, outputs.label_names
    top = np.argsort(-p, axis=1, kind="stable")[:, :2]  # (N, 2) the two most probable classes
    first, second = p[np.arange(len(p)), top[:, 0]], p[np.arange(len(p)), top[:, 1]]
    gap = first - second
    reasons = [
        f"margin {g:.3f} between {names[a]} ({pa:.2f}) and {names[b]} ({pb:.2f})"
        for g, (a, b), pa, pb in zip(gap, top, first, second)
    ]
    return 1.0 - gap, reasons


def _single_entropy(outputs: ProbeOutputs) -> tuple[np.ndarray, list[str]]:
    p, names = outputs.probabilities, outputs.label_names
    entropy = -(p * np.log(p + _EPS)).sum(1)
    most = p.argmax(1)
    top = np.log(p.shape[1])
    reasons = [
        f"entropy {h:.3f} of at most {top:.3f} nats (most probable: {names[m]} {row[m]:.2f})"
        for h, m, row in zip(entropy, most, p)
    ]
    return entropy, reasons


def _single_residual(outputs: ProbeOutputs) -> np.ndarray:
    p = outputs.probabilities
    return p - np.eye(p.shape[1])[p.argmax(1)]


def _multi_margin(outputs: ProbeOutputs) -> tuple[np.ndarray, list[str]]:
    p, names, t = outputs.probabilities, outputs.label_names, outputs.thresholds
    distance = np.abs(p - t)  # (N, C)
    closest = distance.argmin(1)
    nearest = distance[np.arange(len(p)), closest]
    reasons = [
        f"label {names[k]} at {row[k]:.2f}, {d:.3f} from its threshold {t[k]:.2f}"
        for k, d, row in zip(closest, nearest, p)
    ]
    return 1.0 - nearest, reasons


def _multi_entropy(outputs: ProbeOutputs) -> tuple[np.ndarray, list[str]]:
    p, names = outputs.probabilities, outputs.label_names
    binary = -(p * np.log(p + _EPS) + (1 - p) * np.log(1 - p + _EPS))  # (N, C)
    mean = binary.mean(1)
    least = binary.argmax(1)
    reasons = [
        f"mean binary entropy {h:.3f} nats over {p.shape[1]} labels (least sure: {names[k]} at {row[k]:.2f})"
        for h, k, row in zip(mean, least, p)
    ]
    return mean, reasons


def _multi_residual(outputs: ProbeOutputs) -> np.ndarray:
    p = outputs.probabilities
    return p - (p >= outputs.thresholds).astype(p.dtype)


PROBE_READINGS: Registry[ProbeReading] = Registry("probe reading", "--task")
PROBE_READINGS.register(ProbeReading("single_label", _softmax, _single_margin, _single_entropy, _single_residual))
PROBE_READINGS.register(
    ProbeReading("multi_label", _sigmoid, _multi_margin, _multi_entropy, _multi_residual, needs_thresholds=True)
)


def reading_for(task: str, strategy: str) -> ProbeReading:
    """The reading of `task`'s probe; a task without one (regression, token classification) is one `ConfigError`."""
    if task not in PROBE_READINGS:
        raise ConfigError(
            f"--strategy {strategy} reads the class probabilities of a probe, which a {task} probe does not give "
            f"(uncertainty is defined for {', '.join(PROBE_READINGS)}); use --strategy kcenter, typical or random."
        )
    return PROBE_READINGS.get(task)


def fit_selection_probe(
    labelled: torch.Tensor,
    labels: torch.Tensor,
    pool: torch.Tensor,
    task: str,
    label_names: Sequence[str],
    strategy: str,
    seed: int = 0,
    l2_grid: Sequence[float] = DEFAULT_L2_GRID,
    max_iter: int = 200,
) -> ProbeOutputs:
    """The task's probe fitted on the labelled rows (L2 by cross-validation, as the probe without a validation split
    chooses it) and read on the pool rows.

    With too few rows to cross-validate (a class with one row), the probe is fitted once on every row at the grid's
    middle strength: a rough probe is still a ranking of the pool.
    """
    from ..probing.cross_validation import cross_validate_probe, held_out_rows

    reading = reading_for(task, strategy)
    entry = TASKS.get(task)
    if entry.one_class_per_row and len(label_names) < 2:
        raise DataError(
            f"The labelled rows hold one class ({', '.join(label_names)}): --strategy {strategy} needs a probe of two "
            "or more. Label rows of another class, or use --strategy typical or kcenter."
        )
    labelled, pool = labelled.float(), pool.float()
    num_classes = len(label_names)

    def fit(train, validation, grid, rows=None):
        return entry.probe(train, validation, num_classes=num_classes, l2_grid=grid, max_iter=max_iter)

    try:
        classes = labels.numpy() if entry.one_class_per_row else None
        folds = held_out_rows(len(labels), 5, seed, classes=classes, class_names=list(label_names))
        chosen = cross_validate_probe(fit, (labelled, labels), folds, lambda rows: rows, l2_grid)
        probe, out_of_fold = chosen.probe, chosen.out_of_fold_logits
    except DataError:  # too few rows of some class to hold any out
        middle = [sorted(l2_grid)[len(l2_grid) // 2]]
        logger.warning(
            "Probe for selection: too few labelled rows of some class to cross-validate its L2; fitted once on every "
            "labelled row with L2 %.0e.",
            middle[0],
        )
        probe, out_of_fold = fit((labelled, labels), (labelled, labels), middle), None
    logits = (pool @ probe.weight.T + probe.bias).detach().numpy().astype(np.float64)
    thresholds = None
    if reading.needs_thresholds:
        from ..metrics import choose_decision_thresholds

        source = out_of_fold if out_of_fold is not None else labelled @ probe.weight.T + probe.bias
        chosen_thresholds = choose_decision_thresholds(source.detach().numpy(), labels.numpy())
        thresholds = np.asarray(chosen_thresholds.per_label, dtype=np.float64)
    return ProbeOutputs(reading.probabilities(logits), list(label_names), reading, thresholds)
