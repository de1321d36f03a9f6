"""How a strategy learns from unlabelled rows (`Strategy.semi_supervised` names an entry): the probe self-trains on
cached features, a `Trainer` stage trains for consistency between two views of each unlabelled row. Entries name
their implementation lazily, so argument modules import no torch."""

from __future__ import annotations

from dataclasses import dataclass

from .._registry import LazyReference, Registry

__all__ = ["SemiSupervisedMethod", "SEMI_SUPERVISED_METHODS"]


@dataclass(frozen=True)
class SemiSupervisedMethod:
    """One way to use the unlabelled pool.

    Args:
        name: the entry's name (`Strategy.semi_supervised`).
        description: one line for the docs and the card.
        stage: the stage it changes: `probe` (the cached-feature probe) or `finetune` (the `Trainer` stage).
        implementation: what runs it: for `probe`, the `self_train` step of `probe_classification_model`, built from
            `(SemiSupervisedArguments, multi_label=, hidden_labels=)`; for `finetune`, the `Trainer` subclass.
        paper: where it comes from, for the card.
    """

    name: str
    description: str
    stage: str
    implementation: LazyReference
    paper: str

    @property
    def trains_probe(self) -> bool:
        """It changes the probe stage (else the fine-tuning stage)."""
        return self.stage == "probe"


SEMI_SUPERVISED_METHODS: Registry[SemiSupervisedMethod] = Registry("semi-supervised method", "--strategy")
SEMI_SUPERVISED_METHODS.register(
    SemiSupervisedMethod(
        "self_training",
        "the probe pseudo-labels the pool on cached features (per-class thresholds), is refitted on labelled + "
        "pseudo-labelled rows, and repeats",
        stage="probe",
        implementation=LazyReference("hf_transfer.semi_supervised.self_training:ProbeSelfTraining"),
        paper="https://arxiv.org/abs/2110.08263",
    )
)
SEMI_SUPERVISED_METHODS.register(
    SemiSupervisedMethod(
        "fixmatch",
        "consistency training: each unlabelled row's weak view gives a pseudo-label (per-class thresholds) that its "
        "strong view is trained to predict",
        stage="finetune",
        implementation=LazyReference("hf_transfer.semi_supervised.trainer:FixMatchTrainer"),
        paper="https://arxiv.org/abs/2001.07685",
    )
)
