"""The comparison's arms besides model, strategy, budget and seed: how a budget's labelled rows are chosen
(`--selection`), whether the rest of the pool comes along unlabelled (`--unlabelled`), and how the new head starts
(`--head_init`: the recipe's own registry, `hf_transfer.alignment.head_init.HEAD_INITS`), and whether the backbone
keeps its pretrained weights (`--backbone_init`: the transfer gain, measured). Registries, so the
arguments, the grid and the docs list the same values; entries name no implementation (imported when drawing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .._registry import Registry
from ..alignment.head_init import HEAD_INITS
from ..selection.registry import SELECTION_STRATEGIES

__all__ = [
    "BACKBONE_INITS",
    "BackboneInit",
    "DEFAULT_BACKBONE_INIT",
    "DEFAULT_HEAD_INIT",
    "HEAD_INITS",
    "DEFAULT_SELECTION",
    "DEFAULT_UNLABELLED",
    "LabelledRowChoice",
    "LABELLED_ROW_CHOICES",
    "UnlabelledPoolChoice",
    "UNLABELLED_POOLS",
]

DEFAULT_SELECTION = "random"
DEFAULT_UNLABELLED = "none"
DEFAULT_HEAD_INIT = "new"  # finetune's --head_init default
DEFAULT_BACKBONE_INIT = "pretrained"


@dataclass(frozen=True)
class LabelledRowChoice:
    """How a cell's labelled rows are chosen from the pool.

    Args:
        name: its `--selection` value.
        description: one line for `--help` and the docs.
        select_strategy: the `hf-transfer select` strategy (`SELECTION_STRATEGIES` name) that picks the rows, the
            budget's rows per class times the classes in all, over rounds that grow with the budgets; None for the
            seeded random draw of so many rows per class (the recipe's `--train_samples_per_class`).
    """

    name: str
    description: str
    select_strategy: Optional[str] = None


LABELLED_ROW_CHOICES: Registry[LabelledRowChoice] = Registry("selection arm", "--selection")
LABELLED_ROW_CHOICES.register(
    LabelledRowChoice(
        DEFAULT_SELECTION,
        "a seeded random draw of the budget's rows per class (the recipe's --train_samples_per_class; it knows the "
        "classes, so every class gets its share)",
    )
)
for _strategy in SELECTION_STRATEGIES.entries():
    if _strategy.name != "random":  # compare's `random` is the per-class draw above
        LABELLED_ROW_CHOICES.register(
            LabelledRowChoice(
                _strategy.name,
                f"hf-transfer select --strategy {_strategy.name}, labels hidden until picked: {_strategy.description}",
                select_strategy=_strategy.name,
            )
        )


@dataclass(frozen=True)
class UnlabelledPoolChoice:
    """What a cell gets as its unlabelled pool.

    Args:
        name: its `--unlabelled` value.
        description: one line for `--help` and the docs.
        uses_pool: the cell gets the pool rows it was not given labelled, labels removed (the probe strategies
            self-train on them, the fine-tuning ones train FixMatch-style).
    """

    name: str
    description: str
    uses_pool: bool


UNLABELLED_POOLS: Registry[UnlabelledPoolChoice] = Registry("unlabelled arm", "--unlabelled")
for _entry in (
    UnlabelledPoolChoice(DEFAULT_UNLABELLED, "no unlabelled rows: the labelled rows alone", uses_pool=False),
    UnlabelledPoolChoice(
        "rest", "the pool's rows not labelled for the cell, labels removed, as its unlabelled pool", uses_pool=True
    ),
):
    UNLABELLED_POOLS.register(_entry)


@dataclass(frozen=True)
class BackboneInit:
    """How a cell's backbone starts.

    Args:
        name: its `--backbone_init` value.
        description: one line for `--help` and the docs.
        label: how tables and plots name its cells (beside model and strategy).
        recipe_flags: what the cell's recipe is given for it.
    """

    name: str
    description: str
    label: str
    recipe_flags: tuple[str, ...] = ()


BACKBONE_INITS: Registry[BackboneInit] = Registry("backbone init", "--backbone_init")
for _init in (
    BackboneInit(DEFAULT_BACKBONE_INIT, "the backbone's pretrained weights", "pretrained backbone"),
    BackboneInit(
        "random",
        "the same architecture at random initialisation (the recipe's --random_init true): the baseline whose gap "
        "to pretrained is the transfer gain",
        "random-init backbone",
        ("--random_init", "true"),
    ),
):
    BACKBONE_INITS.register(_init)
