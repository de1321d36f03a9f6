"""`TransferTrainer`: `transformers.Trainer` with per-group learning rates for transfer learning.

It also computes the loss itself where the stock one would be wrong for a transfer run. transformers' regression
and multi-label losses are batch means that ignore `num_items_in_batch`, yet `Trainer` treats a model that accepts
loss kwargs as having normalised over the whole accumulated batch: with gradient accumulation the loss is summed
over the micro-batches instead of averaged, and across processes it is multiplied by their number. Regression
(on standardised targets), multi-label BCE and Mixup / CutMix soft targets are computed here as batch means and
`Trainer` is told so (`loss_is_scaled_for_ga = False`), so the loss and its gradient do not depend on how a batch
is split into micro-batches or processes.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional, Sequence

import torch
from torch import nn
from transformers import Trainer

from ..models.heads import head_module_names
from ..tasks import TASKS
from ..tasks.losses import soft_target_loss
from .optim import create_param_groups
from .targets import TargetScale

__all__ = ["TransferTrainer"]

logger = logging.getLogger(__name__)


class TransferTrainer(Trainer):
    """A `Trainer` whose optimizer gives the new head its own learning rate and decays lower layers.

    Everything else (accelerate, DDP, checkpoints, resume, logging, `push_to_hub`) is `Trainer`'s.

    Args:
        head_learning_rate: learning rate of the classification head (default: `args.learning_rate`).
        layer_decay: layer-wise learning-rate decay factor (1.0 = off).
        head_modules: module paths of the task head (`TransferModel.head_modules`); default: found from the
            module tree (`hf_transfer.models.heads.head_module_names`).
        target_scale: for a regression head reparametrised by `standardize_target_head`, the train targets' mean
            and std: the loss is then the standardised mean squared error (`hf_transfer.finetuning.targets`).
        task: the task of the labels (a name of `hf_transfer.tasks.TASKS`); its entry's `batch_mean_loss`, if any,
            is computed here (see the module docstring).
        batch_mixer: Mixup / CutMix of training batches (`hf_transfer.augmentation.BatchMixer`); single-label
            trains on the soft targets with soft-target cross-entropy, multi-label with BCE.
    """

    def __init__(
        self,
        *args,
        head_learning_rate: Optional[float] = None,
        layer_decay: float = 1.0,
        head_modules: Optional[Sequence[str]] = None,
        target_scale: Optional[TargetScale] = None,
        task: str = "single_label",
        batch_mixer: Optional[Callable] = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.target_scale = target_scale
        self.task = TASKS.get("regression" if target_scale is not None else task)  # standardised targets: regression
        self.batch_mixer = batch_mixer
        if self.task.batch_mean_loss is not None or batch_mixer is not None:
            self.loss_is_scaled_for_ga = False
        self.head_learning_rate = head_learning_rate
        self.layer_decay = layer_decay
        self.head_modules = tuple(head_modules) if head_modules else None

    @property
    def task_model(self) -> nn.Module:
        """The model the run evaluates, saves and publishes (subclasses may train it inside a larger module)."""
        return self.model

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mixes = self.batch_mixer is not None and model.training
        task_loss = self.task.batch_mean_loss
        if not (mixes or task_loss is not None) or "labels" not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.pop("labels")
        if mixes:
            inputs["pixel_values"], labels = self.batch_mixer(inputs["pixel_values"], labels)
        outputs = model(**inputs)
        # one class per row, mixed: soft targets
        loss = (task_loss or soft_target_loss)(outputs.logits, labels, self.target_scale)
        return (loss, outputs) if return_outputs else loss

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        if self.optimizer is not None:
            return self.optimizer
        opt_model = self.model if model is None else model
        groups = create_param_groups(
            opt_model,
            head_prefixes=self.head_modules or tuple(head_module_names(_unwrap(opt_model))),
            learning_rate=self.args.learning_rate,
            weight_decay=self.args.weight_decay,
            decay_parameter_names=set(self.get_decay_parameter_names(opt_model)),
            head_learning_rate=self.head_learning_rate,
            layer_decay=self.layer_decay,
        )
        for group in groups:
            group.pop("names")
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        optimizer_kwargs.pop("lr", None)  # each group carries its own
        self.optimizer = optimizer_cls(groups, lr=self.args.learning_rate, **optimizer_kwargs)
        return self.optimizer


def _unwrap(model):
    """The transformers model inside a peft wrapper (for head lookup)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model
