"""Mixup / CutMix of a training batch (timm's `Mixup`), for single-label and multi-label image classification.

timm mixes a batch with its own reverse, so it needs an even batch; the last batch of an epoch can be odd. Here
the odd row out keeps its own (smoothed) target, and the rest is mixed as timm mixes it.
"""

from __future__ import annotations

import torch

from ..tasks import TASKS
from .arguments import AugmentationArguments

__all__ = ["BatchMixer", "create_batch_mixer"]


class BatchMixer:
    """Mixes `pixel_values` in place and returns the soft targets: class distributions (single-label, trained with
    soft-target cross-entropy) or mixed 0/1 rows (multi-label, trained with BCE as before).

    Args:
        mixup: a `timm.data.Mixup`.
        multi_label: whether the targets are 0/1 rows rather than class ids.
    """

    def __init__(self, mixup, multi_label: bool):
        self.mixup = mixup
        self.multi_label = multi_label

    def __call__(self, pixel_values: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from timm.data.mixup import mixup_target

        even = len(pixel_values) - len(pixel_values) % 2
        parts = []
        if even:
            _, mixed = self.mixup(pixel_values[:even], labels[:even])  # mixes the view, so pixel_values, in place
            parts.append(mixed)
        if even < len(pixel_values):
            parts.append(
                mixup_target(
                    labels[even:],
                    self.mixup.num_classes,
                    smoothing=self.mixup.label_smoothing,
                    multi_label=self.multi_label,
                )
            )
        return pixel_values, torch.cat([p.to(pixel_values.device) for p in parts])


def create_batch_mixer(
    args: AugmentationArguments, *, num_labels: int, task: str, label_smoothing: float = 0.0
) -> BatchMixer | None:
    """The batch mixer `--mixup` / `--cutmix` ask for, or None when both are off."""
    if not args.mixes:
        return None
    from timm.data import Mixup

    several_classes = TASKS.get(task).label_kind == "classes"  # 0 / 1 targets per class, not a distribution

    mixup = Mixup(
        mixup_alpha=args.mixup,
        cutmix_alpha=args.cutmix,
        prob=args.mixup_prob,
        switch_prob=args.mixup_switch_prob,
        mode="batch",
        label_smoothing=label_smoothing,
        num_classes=num_labels,
        multi_label=several_classes,
    )
    return BatchMixer(mixup, multi_label=several_classes)
