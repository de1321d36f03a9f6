"""`AlignmentTrainer`: `transformers.Trainer` for (image, caption) pairs; and the collator that makes their batches.

It overrides only what aligning two towers needs: `compute_loss` hands the image and text embeddings of the batch to
the contrastive loss (the toolkit's `InBatchNegativesLoss`, symmetric: CLIP's loss); column removal is off (the
collator reads `image` and `caption`); evaluation reports the loss; a final `save_model` writes the stock
`VisionTextDualEncoderModel` and its processor, while checkpoints keep the whole `AlignmentModel` (LoRA adapters and
learnable temperature), so a resumed run continues where it stopped.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn
from transformers import Trainer

from ..contrastive.trainer import ContrastiveTrainer
from ..errors import ConfigError
from .data import CAPTION_COLUMN
from .model import AlignmentModel, save_dual_encoder

__all__ = ["AlignmentTrainer", "PairCollator"]


class PairCollator:
    """Rows with `image` (PIL) and `caption` -> `pixel_values` (B, 3, H, W) and the tokenised captions (B, T)."""

    def __init__(self, processor: Any, max_seq_length: int = 32):
        self.processor = processor
        self.max_seq_length = max_seq_length

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        images = [row["image"].convert("RGB") for row in rows]
        batch = dict(self.processor.image_processor(images, return_tensors="pt"))
        text = self.processor.tokenizer(
            [row[CAPTION_COLUMN] for row in rows],
            padding=True,
            truncation=True,
            max_length=self.max_seq_length,
            return_tensors="pt",
        )
        batch.update(text)
        return batch


class AlignmentTrainer(ContrastiveTrainer):
    """A `Trainer` aligning the towers of an `AlignmentModel` with its contrastive loss (image i must pick caption i
    among the batch's captions, and caption i image i).

    From `ContrastiveTrainer` it keeps the collator-decides column handling, `loss_module` (the model's `loss`), the
    temperature's exclusion from weight decay and its logging; its constructor (which expects a `ContrastiveModel`
    and two views of one input) is replaced by `Trainer`'s.

    Args:
        model: an `AlignmentModel`.
        args: `TrainingArguments`.
        processor: the `VisionTextDualEncoderProcessor`, saved next to the model.
        **kwargs: everything `Trainer` takes (`train_dataset`, `data_collator`, `callbacks`, ...).
    """

    def __init__(self, model: AlignmentModel, args: Any, *, processor: Any, **kwargs: Any):
        if not isinstance(model, AlignmentModel):
            raise ConfigError(f"AlignmentTrainer trains an AlignmentModel, got {type(model).__name__}.")
        if args.ddp_find_unused_parameters is None:
            args.ddp_find_unused_parameters = False
        Trainer.__init__(self, model=model, args=args, processing_class=processor, **kwargs)
        self.processor = processor
        self.gradient_cache_mini_batch_size = None
        self.model_accepts_loss_kwargs = False
        self.loss_is_scaled_for_ga = False

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Optional[Any] = None,
    ):
        image_embeds, text_embeds = model(**inputs)  # (B, P) each
        loss = self.loss_module(image_embeds, text_embeds)
        return (loss, {"image_embeds": image_embeds}) if return_outputs else loss

    def prediction_step(self, model: nn.Module, inputs: dict[str, Any], prediction_loss_only: bool, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def save_model(self, output_dir: Optional[str] = None, _internal_call: bool = False) -> None:
        """Checkpoints (`_internal_call`) keep the whole model; a final save writes the stock dual encoder."""
        if _internal_call:
            return Trainer.save_model(self, output_dir, _internal_call=True)
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if self.args.should_save:
            save_dual_encoder(self.accelerator.unwrap_model(self.model), self.processor, output_dir)
