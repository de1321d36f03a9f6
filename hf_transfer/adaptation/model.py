"""`DomainAdaptationModel`: the task model and the alignment loss as one module.

The alignment loss may have parameters (DANN's discriminator). Held as a submodule of the module the trainer
wraps, and run inside its `forward`, they are what every engine expects parameters to be: DDP averages their
gradients, FSDP shards them with the root's parameters and gathers them for the forward, ZeRO partitions their
optimizer state, and the optimizer, `zero_grad`, mixed precision and device placement treat them like the
backbone's. The saved model stays the task model alone (`DomainAdaptationTrainer` writes the discriminator to a
file of its own in each checkpoint).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn
from transformers.utils import ModelOutput

from ..models import get_classifier

__all__ = ["DomainAdaptationModel", "DomainAdaptationOutput", "base_model"]


def base_model(model: nn.Module) -> nn.Module:
    """The transformers model inside DDP and peft wrappers (where the head lives)."""
    model = getattr(model, "module", model)
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


@dataclass
class DomainAdaptationOutput(ModelOutput):
    """What a forward pass over source and target rows returns.

    Args:
        logits (`torch.FloatTensor`, `(N, num_labels)`): the task head's logits for every row, both domains.
        features (`torch.FloatTensor`, `(N, D)`): what the task head saw (its input, flattened).
        alignment_loss (`torch.FloatTensor`, scalar): the alignment loss of those features and / or logits.
    """

    logits: Optional[torch.FloatTensor] = None
    features: Optional[torch.FloatTensor] = None
    alignment_loss: Optional[torch.FloatTensor] = None


class DomainAdaptationModel(nn.Module):
    """A task model (any `AutoModelFor{Sequence,Image}Classification`, plain, pooled or with LoRA adapters) and an
    alignment loss whose parameters train with it.

    `forward(**inputs, domain_labels=d)` runs the task model on the rows of both domains, captures the features
    its classification head sees (a forward pre-hook on `get_classifier`), and returns a `DomainAdaptationOutput`
    with the alignment loss of the outputs that loss reads (its `inputs` attribute: `("features",)` when it has
    none, `("logits",)`, `("features", "logits")`). Without `domain_labels` (evaluation, prediction) it is the task
    model: same inputs, same outputs, `labels` included.

    Args:
        task_model (`nn.Module`): the classifier being adapted; what the run saves and publishes.
        alignment_loss (`nn.Module`, *optional*): `DANNLoss`, `CORALLoss`, `MMDLoss`, `MCCLoss`, `CDANLoss`, or any
            module with `forward(*outputs named by its inputs, domain_labels (N,)) -> scalar`. None (target
            self-training without alignment): the alignment loss is 0.
    """

    # Trainer reads these: the training loss is computed by `DomainAdaptationTrainer`, as a batch mean.
    accepts_loss_kwargs = False

    def __init__(self, task_model: nn.Module, alignment_loss: Optional[nn.Module] = None):
        super().__init__()
        self.task_model = task_model
        self.alignment_loss = alignment_loss
        self.loss_inputs: tuple[str, ...] = tuple(getattr(alignment_loss, "inputs", ("features",)))
        unknown = set(self.loss_inputs) - {"features", "logits"}
        if unknown:
            raise ValueError(f"Alignment loss inputs {sorted(unknown)} unknown: use 'features' and/or 'logits'.")
        self._captured: list[torch.Tensor] = []
        self._capturing = False
        get_classifier(base_model(task_model)).register_forward_pre_hook(self._capture_head_input)

    @property
    def config(self) -> Any:
        return self.task_model.config

    @property
    def main_input_name(self) -> str:
        return getattr(self.task_model, "main_input_name", "input_ids")

    def gradient_checkpointing_enable(self, **kwargs: Any) -> None:
        self.task_model.gradient_checkpointing_enable(**kwargs)

    def _capture_head_input(self, module: nn.Module, args: tuple) -> None:
        if self._capturing:
            self._captured.append(args[0])

    def forward(self, *args: Any, labels: Optional[torch.Tensor] = None, **inputs: Any) -> Any:
        # `domain_labels` stays out of the signature: Trainer takes every `*label*` argument for a label column.
        domain_labels = inputs.pop("domain_labels", None)
        if domain_labels is None:
            if labels is not None:
                inputs["labels"] = labels
            return self.task_model(*args, **inputs)
        self._captured.clear()
        self._capturing = True
        try:
            outputs = self.task_model(*args, **inputs)
        finally:
            self._capturing = False
        if not self._captured:
            raise RuntimeError("The classification head did not run, so no features were captured.")
        features = self._captured[-1].flatten(1)
        self._captured.clear()
        if self.alignment_loss is None:
            alignment = outputs.logits.new_zeros(())
        else:
            available = {"features": features, "logits": outputs.logits}
            alignment = self.alignment_loss(*(available[name] for name in self.loss_inputs), domain_labels)
        return DomainAdaptationOutput(logits=outputs.logits, features=features, alignment_loss=alignment)
