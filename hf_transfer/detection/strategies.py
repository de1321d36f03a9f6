"""The detection transfer strategies by name (`recipes/detect.py --strategy`): which parts of the detector each
stage trains.

A detector here is the user's classification backbone under a DETR-family neck and head (input projection,
transformer encoder / decoder, query embeddings, class and box heads), all new. The strategies are the
classification ones (`hf_transfer.finetuning.strategies`) carried over: the linear probe becomes a frozen backbone
under a trained neck and head, LP-FT becomes the head first and then everything. A stage trains `neck` (everything
but the backbone), `all`, or `lora` (LoRA adapters in the backbone plus the whole neck and head).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from .._registry import Registry

__all__ = ["DetectionStrategy", "DETECTION_STRATEGIES", "Stage"]

Stage = Literal["neck", "all", "lora"]


@dataclass(frozen=True)
class DetectionStrategy:
    """A way to transfer a classification backbone (or a detector) to a detection task.

    Args:
        name: its `--strategy` value.
        description: one line for `--help`, the docs and the card.
        stages: what each `Trainer` stage trains, in order; a two-stage strategy splits the epochs at
            `--head_epochs`.
        analogue: the classification strategy it carries over, for the docs.
    """

    name: str
    description: str
    stages: tuple[Stage, ...]
    analogue: Optional[str] = None

    @property
    def trains_lora(self) -> bool:
        return "lora" in self.stages


DETECTION_STRATEGIES: Registry[DetectionStrategy] = Registry("detection strategy", "--strategy")
DETECTION_STRATEGIES.register(
    DetectionStrategy(
        "frozen_backbone",
        "the pretrained backbone frozen; only the detection neck and head are trained",
        ("neck",),
        analogue="linear_probe",
    )
)
DETECTION_STRATEGIES.register(DetectionStrategy("full", "every weight trained", ("all",), analogue="full"))
DETECTION_STRATEGIES.register(
    DetectionStrategy(
        "lora",
        "peft LoRA adapters in the backbone, the neck and head trained in full; saved merged",
        ("lora",),
        analogue="lora",
    )
)
DETECTION_STRATEGIES.register(
    DetectionStrategy(
        "head_then_full",
        "the neck and head first on a frozen backbone (--head_epochs), then every weight",
        ("neck", "all"),
        analogue="lp_ft",
    )
)
