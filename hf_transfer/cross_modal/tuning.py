"""How the text body is tuned on images (`--body_tuning`): one entry each.

`frozen` is the frozen pretrained transformer of Lu et al. 2021 (https://arxiv.org/abs/2103.05247): the body's
self-attention and feed-forward weights stay as pretrained; its LayerNorms and position embeddings train, with the
new parts (patch embedder, [CLS] vector, classifier). `lora` is `frozen` plus low-rank adapters on the body's
Linear layers (`hf_transfer.finetuning.lora`'s default targets), folded in when the model is saved. `full` trains
every weight (ORCA's fine-tuning stage, Shen et al. 2023, https://arxiv.org/abs/2302.05738, without its embedder
alignment).
"""

from __future__ import annotations

from dataclasses import dataclass

from .._registry import LazyReference, Registry

__all__ = ["BodyTuningEntry", "BODY_TUNINGS", "BodyInitEntry", "BODY_INITS"]


@dataclass(frozen=True)
class BodyTuningEntry:
    """A way of tuning the text body.

    Args:
        name: its `--body_tuning` value.
        description: one line for `--help` and the docs.
        prepare: `prepare(model, lora_args) -> None`, making the right weights of a `CrossModalForImageClassification`
            trainable (the new parts always are).
        uses_lora: the `--lora_*` flags apply; the adapters are merged into the body when saving.
    """

    name: str
    description: str
    prepare: LazyReference
    uses_lora: bool = False


BODY_TUNINGS: Registry[BodyTuningEntry] = Registry("body tuning", "--body_tuning")
BODY_TUNINGS.register(
    BodyTuningEntry(
        name="frozen",
        description="frozen pretrained transformer (Lu et al. 2021): only the body's LayerNorms and position "
        "embeddings train, with the patch embedder, [CLS] and classifier",
        prepare=LazyReference("hf_transfer.cross_modal.model:freeze_body"),
    )
)
BODY_TUNINGS.register(
    BodyTuningEntry(
        name="lora",
        description="frozen plus LoRA adapters on the body's Linear layers (merged into it when saving)",
        prepare=LazyReference("hf_transfer.cross_modal.model:add_lora_to_body"),
        uses_lora=True,
    )
)
BODY_TUNINGS.register(
    BodyTuningEntry(
        name="full",
        description="every weight of the body trains",
        prepare=LazyReference("hf_transfer.cross_modal.model:train_whole_body"),
    )
)


@dataclass(frozen=True)
class BodyInitEntry:
    """Where the body's weights start (`--body_init`).

    Args:
        name: its `--body_init` value.
        description: one line for `--help` and the docs.
        loads_weights: the body's pretrained weights are loaded; otherwise the same config is initialised at random
            (the control that isolates what pretraining on text brings).
    """

    name: str
    description: str
    loads_weights: bool


BODY_INITS: Registry[BodyInitEntry] = Registry("body init", "--body_init")
BODY_INITS.register(BodyInitEntry("pretrained", "the text encoder's pretrained weights", loads_weights=True))
BODY_INITS.register(BodyInitEntry("random", "the same architecture at random init (the control)", loads_weights=False))
