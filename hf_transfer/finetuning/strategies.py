"""The transfer strategies by name (`--strategy`): each is one entry that says which stages it runs.

A strategy is at most two stages: the linear probe on cached frozen features, then fine-tuning with `Trainer`
(full or LoRA). `recipes/finetune.py` asks the entry which stages to run and how they connect (LP-FT's fine-tuning
starts from the probe's head), `compare` lists the entries, domain adaptation accepts the ones that train the
backbone. Adding a strategy is one entry here (and its stage code, when it brings a new kind of stage).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .._registry import Registry

__all__ = ["Strategy", "STRATEGIES", "FinetuneMethod", "FINETUNE_METHODS"]


@dataclass(frozen=True)
class FinetuneMethod:
    """What a fine-tuning stage trains, and the learning rate it gets when `--learning_rate` is not given: every
    weight moves from a good start and wants a small step; LoRA's adapters start at zero and want a larger one
    (benchmarks/RESULTS.md, "LoRA defaults")."""

    name: str
    description: str
    learning_rate: float


FINETUNE_METHODS: Registry[FinetuneMethod] = Registry("fine-tuning method", "--lp_ft_finetune")
FINETUNE_METHODS.register(FinetuneMethod("full", "every weight, with a new head", 5e-5))
FINETUNE_METHODS.register(FinetuneMethod("lora", "LoRA adapters on every backbone Linear (peft) and the head", 5e-4))


@dataclass(frozen=True)
class Strategy:
    """A way to transfer a backbone to a labelled task.

    Args:
        name: its `--strategy` value.
        description: one line for `--help`, the docs and `compare`.
        probes: runs the linear probe (cached frozen features + a fitted head) first.
        finetune_method: what its fine-tuning stage trains (`full` or `lora`); None when it has no such stage.
        finetune_method_flag: the `TransferArguments` field that chooses `finetune_method` instead (LP-FT's
            `lp_ft_finetune`).
        trains_on_pairs: the backbone is first fine-tuned on pairs of labelled rows (`hf_transfer.pairs`), then
            probed; rows must have classes to pair by.
        semi_supervised: how it learns from unlabelled rows (`--unlabelled_file` ...): an entry of
            `hf_transfer.semi_supervised.SEMI_SUPERVISED_METHODS` (`self_training` for a probe, `fixmatch` for a
            fine-tuning stage).
        paper: where it comes from, for the card.
    """

    name: str
    description: str
    probes: bool = False
    finetune_method: Optional[str] = None
    finetune_method_flag: Optional[str] = None
    trains_on_pairs: bool = False
    semi_supervised: Optional[str] = None
    paper: Optional[str] = None

    @property
    def finetunes(self) -> bool:
        """Whether it trains the backbone (a `Trainer` stage: checkpoints, resumption, augmentation)."""
        return self.finetune_method is not None or self.finetune_method_flag is not None

    @property
    def head_from_probe(self) -> bool:
        """Fine-tuning starts from the probe's fitted head instead of a new one."""
        return self.probes and self.finetunes

    @property
    def trains_backbone(self) -> bool:
        """Its saved backbone differs from the pretrained one (the probe's cached pretrained features do not apply)."""
        return self.finetunes or self.trains_on_pairs

    @property
    def starts_from_frozen_features(self) -> bool:
        """The pretrained embedding is used as it is (at least at first): pool as the checkpoint was trained."""
        return self.probes


STRATEGIES: Registry[Strategy] = Registry("strategy", "--strategy")
STRATEGIES.register(
    Strategy(
        "linear_probe",
        "logistic regression (ridge for regression) on cached frozen features",
        probes=True,
        semi_supervised="self_training",
    )
)
STRATEGIES.register(
    Strategy("full", "fine-tune every weight with a new head", finetune_method="full", semi_supervised="fixmatch")
)
STRATEGIES.register(
    Strategy(
        "lora",
        "peft LoRA adapters plus a new head (Hu et al. 2021)",
        finetune_method="lora",
        semi_supervised="fixmatch",
        paper="https://arxiv.org/abs/2106.09685",
    )
)
STRATEGIES.register(
    Strategy(
        "lp_ft",
        "the linear probe, then fine-tuning (--lp_ft_finetune full or lora) from the probe's head (Kumar et al. 2022)",
        probes=True,
        finetune_method_flag="lp_ft_finetune",
        semi_supervised="fixmatch",
        paper="https://arxiv.org/abs/2202.10054",
    )
)
STRATEGIES.register(
    Strategy(
        "contrastive_probe",
        "SetFit-style: the backbone fine-tuned on every pair of rows in a batch (cosine similarity against label "
        "agreement), then the probe on its features (Tunstall et al. 2022)",
        probes=True,
        trains_on_pairs=True,
        semi_supervised="self_training",
        paper="https://arxiv.org/abs/2209.11055",
    )
)
