"""How the image tower is tuned while the text tower learns to meet it (`--vision_tuning`): one entry each.

`frozen` is locked-image tuning (LiT, Zhai et al. 2022, https://arxiv.org/abs/2111.07991): the image tower keeps its
pretrained weights and its batch-norm statistics (it stays in eval mode), only the text tower and both projections
train. `lora` adds low-rank adapters to the image tower (`hf_transfer.finetuning.lora`'s default targets) and folds
them in when the model is saved, so the output is a plain dual encoder. `full` trains every weight, as CLIP does.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._registry import LazyReference, Registry

__all__ = ["VisionTuningEntry", "VISION_TUNINGS"]


@dataclass(frozen=True)
class VisionTuningEntry:
    """A way of tuning the image tower.

    Args:
        name: its `--vision_tuning` value.
        description: one line for `--help` and the docs.
        prepare: `prepare(vision_model, lora_args) -> vision_model`, making the right weights trainable.
        keeps_eval_mode: the tower stays in eval mode during training (frozen batch-norm statistics and no dropout).
        uses_lora: the `--lora_*` flags apply.
    """

    name: str
    description: str
    prepare: LazyReference
    keeps_eval_mode: bool = False
    uses_lora: bool = False


VISION_TUNINGS: Registry[VisionTuningEntry] = Registry("vision tuning", "--vision_tuning")
VISION_TUNINGS.register(
    VisionTuningEntry(
        name="frozen",
        description="locked-image tuning (LiT): the image tower is not trained, only the text tower and projections",
        prepare=LazyReference("hf_transfer.alignment.model:freeze_tower"),
        keeps_eval_mode=True,
    )
)
VISION_TUNINGS.register(
    VisionTuningEntry(
        name="lora",
        description="LoRA adapters on the image tower (merged into it when saving)",
        prepare=LazyReference("hf_transfer.alignment.model:add_lora_to_tower"),
        uses_lora=True,
    )
)
VISION_TUNINGS.register(
    VisionTuningEntry(
        name="full",
        description="every weight of the image tower is trained (CLIP-style)",
        prepare=LazyReference("hf_transfer.alignment.model:train_whole_tower"),
    )
)
