"""The domain-adaptation methods by name (`--method`): one entry each, saying what it trains on and which
alignment loss (if any) it adds.

`DomainAdaptationArguments` checks names here without importing the losses; `create_alignment_loss` builds an
entry's loss and the recipe picks the training rows from `trains_on`. Adding a method is its loss module plus one
entry. The loss says which model outputs it reads through its `inputs` attribute (`("features",)` by default,
`("logits",)` for MCC, `("features", "logits")` for CDAN); `DomainAdaptationModel` passes those, in that order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from .._registry import LazyReference, Registry

__all__ = ["AdaptationMethod", "ADAPTATION_METHODS"]


@dataclass(frozen=True)
class AdaptationMethod:
    """A way to train a classifier for a target domain.

    Args:
        name: its `--method` value.
        description: one line for `--help` and the docs.
        trains_on: `source_and_target` (labelled source rows paired with unlabelled target rows), `source`
            (labelled source rows alone) or `target` (labelled target rows: the oracle, not an adaptation method).
        alignment_loss: the loss module added to the task loss; None for the methods without one.
        loss_options: `DomainAdaptationArguments` field -> the loss's keyword argument.
        loss_takes_feature_dim: the loss is built with the width of the features it aligns (a discriminator).
        loss_takes_num_labels: the loss is built with the number of classes (CDAN's multilinear map).
        paper: where it comes from, for the card.
    """

    name: str
    description: str
    trains_on: Literal["source_and_target", "source", "target"]
    alignment_loss: Optional[LazyReference] = None
    loss_options: dict[str, str] = field(default_factory=dict)
    loss_takes_feature_dim: bool = False
    loss_takes_num_labels: bool = False
    paper: Optional[str] = None

    @property
    def aligns(self) -> bool:
        """Draws unlabelled target batches and adds an alignment loss."""
        return self.alignment_loss is not None


ADAPTATION_METHODS: Registry[AdaptationMethod] = Registry("domain-adaptation method", "--method")
ADAPTATION_METHODS.register(AdaptationMethod("source_only", "labelled source only (the baseline)", trains_on="source"))
ADAPTATION_METHODS.register(
    AdaptationMethod(
        "dann",
        "domain discriminator behind gradient reversal (Ganin et al. 2016)",
        trains_on="source_and_target",
        alignment_loss=LazyReference("hf_transfer.adaptation.losses.dann:DANNLoss"),
        loss_options={"dann_hidden_size": "hidden_size", "dann_dropout": "dropout"},
        loss_takes_feature_dim=True,
        paper="https://arxiv.org/abs/1505.07818",
    )
)
ADAPTATION_METHODS.register(
    AdaptationMethod(
        "coral",
        "match feature covariances (Sun & Saenko 2016)",
        trains_on="source_and_target",
        alignment_loss=LazyReference("hf_transfer.adaptation.losses.coral:CORALLoss"),
        paper="https://arxiv.org/abs/1607.01719",
    )
)
ADAPTATION_METHODS.register(
    AdaptationMethod(
        "mmd",
        "multi-kernel MMD (DAN, Long et al. 2015)",
        trains_on="source_and_target",
        alignment_loss=LazyReference("hf_transfer.adaptation.losses.mmd:MMDLoss"),
        loss_options={"mmd_num_kernels": "num_kernels", "mmd_kernel_mul": "kernel_mul", "mmd_estimator": "estimator"},
        paper="https://arxiv.org/abs/1502.02791",
    )
)
ADAPTATION_METHODS.register(
    AdaptationMethod(
        "mcc",
        "minimum class confusion on the target predictions (Jin et al. 2020)",
        trains_on="source_and_target",
        alignment_loss=LazyReference("hf_transfer.adaptation.losses.mcc:MCCLoss"),
        loss_options={"mcc_temperature": "temperature"},
        paper="https://arxiv.org/abs/1912.03699",
    )
)
ADAPTATION_METHODS.register(
    AdaptationMethod(
        "cdan",
        "domain discriminator conditioned on the predictions, CDAN+E (Long et al. 2018)",
        trains_on="source_and_target",
        alignment_loss=LazyReference("hf_transfer.adaptation.losses.cdan:CDANLoss"),
        loss_options={
            "dann_hidden_size": "hidden_size",
            "dann_dropout": "dropout",
            "cdan_entropy_conditioning": "entropy_conditioning",
            "cdan_randomized": "randomized",
            "cdan_randomized_dim": "randomized_dim",
        },
        loss_takes_feature_dim=True,
        loss_takes_num_labels=True,
        paper="https://arxiv.org/abs/1705.10667",
    )
)
ADAPTATION_METHODS.register(
    AdaptationMethod("target_oracle", "train on the labelled target train split (the upper bound)", trains_on="target")
)
