"""`create_alignment_loss`: the alignment loss a domain-adaptation method names."""

from __future__ import annotations

from typing import Any, Optional

from torch import nn

from ..methods import ADAPTATION_METHODS

__all__ = ["ALIGNMENT_METHODS", "create_alignment_loss"]

ALIGNMENT_METHODS: tuple[str, ...] = tuple(entry.name for entry in ADAPTATION_METHODS.entries() if entry.aligns)


def create_alignment_loss(
    method: str, feature_dim: int, num_labels: Optional[int] = None, **options: Any
) -> Optional[nn.Module]:
    """The alignment loss of the `ADAPTATION_METHODS` entry `method`, or None for methods without one.

    `feature_dim` is the width of the features the head sees, `num_labels` the number of classes (needed by the
    entries with `loss_takes_num_labels`). `options` are `DomainAdaptationArguments` fields
    (`dann_hidden_size=...`, `mmd_num_kernels=...`); each loss takes the ones its entry maps, and the others are
    ignored.
    """
    entry = ADAPTATION_METHODS.get(method)
    if entry.alignment_loss is None:
        return None
    kwargs = {argument: options[option] for option, argument in entry.loss_options.items() if option in options}
    sizes = []
    if entry.loss_takes_feature_dim:
        sizes.append(feature_dim)
    if entry.loss_takes_num_labels:
        if num_labels is None:
            raise ValueError(f"The {method} loss needs num_labels, the number of classes.")
        sizes.append(num_labels)
    return entry.alignment_loss(*sizes, **kwargs)
