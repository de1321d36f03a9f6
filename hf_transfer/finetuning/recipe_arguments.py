"""The argument dataclasses of `recipes/finetune.py`, in its order: one list for the recipe and for `compare`, which
reads the flags it hands to finetune cells with the same parser."""

from __future__ import annotations

__all__ = ["finetune_argument_classes"]


def finetune_argument_classes() -> tuple[type, ...]:
    """`(ModelArguments, DataArguments, TransferArguments, LoraArguments, SearchArguments, PairArguments,
    SemiSupervisedArguments, AugmentationArguments, HeadInitArguments, HubArguments, TrainingArguments)`; imported when
    asked (config modules stay light)."""
    from transformers import TrainingArguments

    from ..alignment.head_init import HeadInitArguments
    from ..augmentation import AugmentationArguments
    from ..data import DataArguments
    from ..hub import HubArguments
    from ..models import ModelArguments
    from ..pairs import PairArguments
    from ..semi_supervised import SemiSupervisedArguments
    from .arguments import LoraArguments, SearchArguments, TransferArguments

    return (
        ModelArguments,
        DataArguments,
        TransferArguments,
        LoraArguments,
        SearchArguments,
        PairArguments,
        SemiSupervisedArguments,
        AugmentationArguments,
        HeadInitArguments,
        HubArguments,
        TrainingArguments,
    )
