"""`ContrastiveTrainer`: `transformers.Trainer` for contrastive pretraining of a `ContrastiveModel`.

It overrides only what a loss over two views of a batch needs:

- `compute_loss` splits the 2B embeddings into the two views and delegates to the loss module (or to
  GradCache, `gradient_cache_mini_batch_size`);
- column removal is off: the collator, not the model's `forward` signature, decides what a row needs
  (raw `text` / `image` columns are read there);
- `prediction_step` reports the contrastive loss on evaluation data (`eval_loss`);
- `save_model` exports the backbone only (projection head and loss dropped), while the checkpoints that
  `Trainer` writes during training keep the whole model, so `resume_from_checkpoint` restores head and
  temperature too;
- the learnable temperature is excluded from weight decay and logged.

Everything else (accelerate, DDP, gradient accumulation, mixed precision, checkpoints, resume, logging,
callbacks) is `Trainer`'s.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import torch
from torch import nn
from transformers import Trainer, TrainingArguments

from ..errors import ConfigError
from .gradcache import cached_contrastive_loss, embed_in_mini_batches
from .losses import Temperature
from .model import ContrastiveModel

__all__ = ["ContrastiveTrainer"]

logger = logging.getLogger(__name__)


class ContrastiveTrainer(Trainer):
    """A `Trainer` whose loss compares two views of every sample (SimCLR, SimCSE, pairs, SupCon).

    The collator must return one batch of 2B rows, view 1 of all samples then view 2 (see
    `hf_transfer.contrastive.views`), plus optional `labels` (B,).

    Args:
        model: a `ContrastiveModel`.
        args: `TrainingArguments`. `ddp_find_unused_parameters` defaults to False here (every trainable
            parameter is used; unused poolers are frozen by `ContrastiveModel`).
        loss: the loss module (`NTXentLoss`, `InBatchNegativesLoss`, `SupConLoss`); it becomes `model.loss`,
            so its parameters are trained, synchronised and checkpointed with the model. Default: `model.loss`.
        gradient_cache_mini_batch_size: turn on GradCache with this many rows per mini-batch (same gradients,
            memory of one mini-batch). Default: off.
        max_seq_length, save_sentence_transformers: passed to `ContrastiveModel.save_backbone` by `save_model`.
        **kwargs: everything `Trainer` takes (`train_dataset`, `data_collator`, `callbacks`, ...).

    Example:
        >>> backbone = create_backbone("minilm")
        >>> model = ContrastiveModel(backbone, projection_dim=0)
        >>> trainer = ContrastiveTrainer(
        ...     model=model, args=TrainingArguments("out", per_device_train_batch_size=32),
        ...     loss=NTXentLoss(temperature=0.05), train_dataset=data["train"],
        ...     data_collator=ContrastiveTextCollator(backbone.processor, views="dropout"),
        ... )
        >>> trainer.train()
        >>> trainer.save_model("out")  # the backbone alone: AutoModel / SentenceTransformer folder
    """

    def __init__(
        self,
        model: ContrastiveModel,
        args: TrainingArguments,
        *,
        loss: Optional[nn.Module] = None,
        gradient_cache_mini_batch_size: Optional[int] = None,
        max_seq_length: int = 128,
        save_sentence_transformers: bool = True,
        **kwargs: Any,
    ):
        if not isinstance(model, ContrastiveModel):
            raise ConfigError(
                f"ContrastiveTrainer trains a ContrastiveModel, got {type(model).__name__}: wrap the backbone with "
                "ContrastiveModel(create_backbone(name), projection_dim=...)."
            )
        if loss is not None:
            model.loss = loss
        if model.loss is None:
            raise ConfigError("ContrastiveTrainer needs a loss: pass loss=NTXentLoss(...) (or set model.loss).")
        if gradient_cache_mini_batch_size is not None and gradient_cache_mini_batch_size <= 0:
            raise ConfigError(
                f"gradient_cache_mini_batch_size must be positive; got {gradient_cache_mini_batch_size}. "
                "Pass None to turn GradCache off."
            )
        if args.ddp_find_unused_parameters is None:
            args.ddp_find_unused_parameters = False
        super().__init__(model=model, args=args, **kwargs)
        self.gradient_cache_mini_batch_size = gradient_cache_mini_batch_size
        self.max_seq_length = max_seq_length
        self.save_sentence_transformers = save_sentence_transformers
        self.model_accepts_loss_kwargs = False
        self.loss_is_scaled_for_ga = False  # a per-batch mean: Trainer divides it for gradient accumulation

    # ---- data: the collator decides which columns are used -------------------------------------------

    def _remove_unused_columns(self, dataset, description: Optional[str] = None):
        return dataset

    def _get_collator_with_removed_columns(self, data_collator, description: Optional[str] = None):
        return data_collator

    # ---- loss ------------------------------------------------------------------------------------------

    @property
    def loss_module(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.model).loss

    def _loss_of(self, embeddings: torch.Tensor, labels: Optional[torch.Tensor]) -> torch.Tensor:
        if embeddings.shape[0] % 2:
            raise ValueError(
                f"A contrastive batch holds two views per sample (2B rows) but got {embeddings.shape[0]} rows; "
                "use a collator from hf_transfer.contrastive.views."
            )
        first, second = embeddings.chunk(2)  # (B, D) each: view 1, view 2
        return self.loss_module(first, second, labels)

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Optional[Any] = None,
    ):
        labels = inputs.pop("labels", None)
        if self.gradient_cache_mini_batch_size and model.training and torch.is_grad_enabled():
            loss = cached_contrastive_loss(
                model,
                inputs,
                lambda embeddings: self._loss_of(embeddings, labels),
                self.gradient_cache_mini_batch_size,
                loss_parameters=list(self.loss_module.parameters()),
            )
            return (loss, {}) if return_outputs else loss
        embeddings = model(**inputs)  # (2B, D)
        loss = self._loss_of(embeddings, labels)
        return (loss, {"embeddings": embeddings}) if return_outputs else loss

    def prediction_step(self, model: nn.Module, inputs: dict[str, Any], prediction_loss_only: bool, ignore_keys=None):
        """The contrastive loss of an evaluation batch (no logits: the metric is `eval_loss`)."""
        inputs = self._prepare_inputs(inputs)
        labels = inputs.pop("labels", None)
        with torch.no_grad():
            if self.gradient_cache_mini_batch_size:
                embeddings = embed_in_mini_batches(model, inputs, self.gradient_cache_mini_batch_size)
            else:
                embeddings = model(**inputs)
            loss = self._loss_of(embeddings, labels)
        return loss.detach(), None, None

    # ---- optimisation and logging ------------------------------------------------------------------------

    def get_decay_parameter_names(self, model: nn.Module) -> list[str]:
        """Trainer's rule, minus the temperature (decay would pull a learnable tau towards 1)."""
        return [name for name in super().get_decay_parameter_names(model) if "logit_scale" not in name]

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        temperature = getattr(self.loss_module, "temperature", None)
        if isinstance(temperature, Temperature) and temperature.learnable and "loss" in logs:
            logs["temperature"] = round(temperature.value, 5)
        super().log(logs, *args, **kwargs)

    # ---- saving ------------------------------------------------------------------------------------------

    def save_model(self, output_dir: Optional[str] = None, _internal_call: bool = False) -> None:
        """Checkpoints (`_internal_call`) keep the whole model; a final save writes the backbone alone."""
        if _internal_call:
            return super().save_model(output_dir, _internal_call=True)
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if self.args.should_save:
            self.accelerator.unwrap_model(self.model).save_backbone(
                output_dir,
                max_seq_length=self.max_seq_length,
                sentence_transformers=self.save_sentence_transformers,
            )
