"""`PairTrainer`: a thin `Trainer` whose loss is `PairCosineLoss` on the features the task head reads."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import torch
from datasets import Dataset
from torch import nn
from transformers import Trainer, TrainingArguments

from .arguments import PairArguments
from .batching import ClassBalancedOrder, as_class_array
from .loss import PairCosineLoss

__all__ = ["PairTrainer", "train_on_pairs"]


class PairTrainer(Trainer):
    """Trains the backbone of a classification model on pairs of its batch's rows.

    The embedding is the input of `feature_module` (the head's first new layer, `locate_probe_features`): exactly
    what the probe reads afterwards, for any architecture and pooling. Batches come in `ClassBalancedOrder`.
    """

    def __init__(self, *args: Any, feature_module: str, row_labels: torch.Tensor, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.feature_module = feature_module
        self.row_labels = row_labels
        self.pair_loss = PairCosineLoss()

    def _get_train_sampler(self, train_dataset=None) -> ClassBalancedOrder:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        batch = self.args.per_device_train_batch_size
        return ClassBalancedOrder(len(dataset), batch, as_class_array(self.row_labels), self.args.seed)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        captured: list[torch.Tensor] = []
        module = self.accelerator.unwrap_model(model).get_submodule(self.feature_module)
        hook = module.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            outputs = model(**inputs)
        finally:
            hook.remove()
        loss = self.pair_loss(captured[0], labels)
        return (loss, outputs) if return_outputs else loss


def train_on_pairs(
    model: nn.Module,
    feature_module: str,
    train_dataset: Dataset,
    row_labels: torch.Tensor,
    data_collator: Callable,
    pair_args: PairArguments,
    training_args: TrainingArguments,
) -> dict[str, float]:
    """Fine-tune `model`'s backbone in place on pairs of `train_dataset`'s rows; returns `pair_*` metrics.

    The run's `TrainingArguments` are reused for what they say about the machine (device, precision, processes,
    seed, logging) with the pair stage's own steps, batch and learning rate; nothing is saved or evaluated."""
    steps = pair_args.steps_for(len(train_dataset))
    stage_args = dataclasses.replace(
        training_args,
        output_dir=os.path.join(training_args.output_dir, "pair_training"),
        max_steps=steps,
        per_device_train_batch_size=pair_args.pair_batch_size,
        gradient_accumulation_steps=1,
        learning_rate=pair_args.pair_learning_rate,
        warmup_steps=max(0, round(pair_args.pair_warmup_ratio * steps)),
        lr_scheduler_type="linear",
        eval_strategy="no",
        save_strategy="no",
        load_best_model_at_end=False,
        push_to_hub=False,
        report_to=[],
        label_smoothing_factor=0.0,
        logging_steps=max(1, steps // 10),
    )
    trainer = PairTrainer(
        model=model,
        args=stage_args,
        train_dataset=train_dataset,
        data_collator=data_collator,
        feature_module=feature_module,
        row_labels=row_labels,
    )
    result = trainer.train()
    model.eval()
    return {
        "pair_steps": steps,
        "pair_batch_size": pair_args.pair_batch_size,
        "pair_loss": float(result.training_loss),
        "pair_runtime": float(result.metrics.get("train_runtime", 0.0)),
    }
