"""`DomainAdaptationTrainer`: the task loss on labelled source rows plus an alignment loss on both domains.

Each training batch comes from a `DomainPairDataset` through a `DomainPairCollator`: B labelled source rows
and B unlabelled target rows in one forward pass (so batch-norm layers see both domains, as in DANN). A
forward pre-hook on the classification head (`hf_transfer.models.get_classifier`) captures the features
the head sees for all 2B rows; the alignment loss (`DANNLoss`, `CORALLoss`, `MMDLoss`) acts on them. This
works for any stock `AutoModelFor{Sequence,Image}Classification`, plain or wrapped in LoRA adapters.

The alignment loss may have parameters (DANN's discriminator). They live outside the model, so the model
checkpoint stays a plain transformers / peft checkpoint; the trainer gives them their own optimizer group,
averages their gradients over processes, zeroes them after each step, and stores them next to each
checkpoint (`alignment_loss.safetensors`) so a resumed run continues with the same discriminator.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Literal, Optional

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from ..finetuning import TransferTrainer
from ..models import get_classifier
from .data import DomainPairCollator, DomainPairDataset
from .losses import ganin_coefficient

__all__ = ["ALIGNMENT_STATE_NAME", "DomainAdaptationTrainer"]

logger = logging.getLogger(__name__)

ALIGNMENT_STATE_NAME = "alignment_loss.safetensors"


def _base_model(model: nn.Module) -> nn.Module:
    """The transformers model inside DDP and peft wrappers (where the head lives)."""
    model = getattr(model, "module", model)
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


class _AlignmentLossCallback(TrainerCallback):
    """Keeps the alignment loss's own parameters in step with the model's: one copy across processes,
    averaged gradients before each optimizer step, zeroed gradients after it, saved with each checkpoint."""

    def __init__(self, loss: nn.Module):
        self.loss = loss

    def _parameters(self) -> list[nn.Parameter]:
        return [p for p in self.loss.parameters() if p.requires_grad]

    @staticmethod
    def _distributed() -> bool:
        return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1

    def on_train_begin(self, args, state, control, **kwargs):
        if self._distributed():
            for param in self.loss.parameters():
                dist.broadcast(param.data, src=0)
        self.loss.zero_grad(set_to_none=True)

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if not self._distributed():
            return
        world_size = dist.get_world_size()
        for param in self._parameters():
            if param.grad is None:
                param.grad = torch.zeros_like(param)
            dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
            param.grad.div_(world_size)

    def on_step_end(self, args, state, control, **kwargs):
        self.loss.zero_grad(set_to_none=True)  # Trainer zeroes only the model's gradients

    def on_save(self, args, state, control, **kwargs):
        state_dict = self.loss.state_dict()
        if not state_dict or not args.should_save:
            return
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if not os.path.isdir(folder):
            return
        tmp = os.path.join(folder, f".{ALIGNMENT_STATE_NAME}.tmp")
        save_file({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, tmp)
        os.replace(tmp, os.path.join(folder, ALIGNMENT_STATE_NAME))


class DomainAdaptationTrainer(TransferTrainer):
    """A `TransferTrainer` that adds a feature-alignment loss between a labelled source and an unlabelled target.

    Loss per step, on a batch of B source rows (x_s, y_s) and B target rows x_t:

        L = CE(h(f(x_s)), y_s) + w · L_align(f(x_s), f(x_t)),

    where f(x) are the features the head h sees, and w = `alignment_weight` · λ_p with λ_p the Ganin warm-up
    2 / (1 + exp(-γ p)) - 1 at progress p = step / max_steps (`alignment_schedule="ganin"`) or 1 (`"constant"`).
    For an adversarial loss (`DANNLoss`) w is instead the gradient-reversal coefficient and L_align is added
    unscaled, so the discriminator always learns at full strength.

    Without `alignment_loss` it is a plain `TransferTrainer` (used for `source_only` and `target_oracle`).
    Evaluation batches are ordinary labelled batches: `evaluate` / `predict` work on either domain.

    Args:
        alignment_loss (`nn.Module`, *optional*): `DANNLoss`, `CORALLoss`, `MMDLoss`, or any module with
            `forward(features (N, D), domain_labels (N,)) -> scalar` (and `adversarial = True` when it reverses
            gradients itself through a `coefficient` attribute). Training data must then be a
            `DomainPairDataset`.
        alignment_weight (`float`, defaults to 1.0): w before the schedule.
        alignment_schedule (`Literal["ganin", "constant"]`, defaults to `"ganin"`): warm-up of w.
        schedule_gamma (`float`, defaults to 10.0): γ of the Ganin schedule.
        alignment_learning_rate (`float`, *optional*): learning rate of the alignment loss's parameters
            (DANN's discriminator). Default: `head_learning_rate`, else `args.learning_rate`.
        head_learning_rate, layer_decay: as for `TransferTrainer`.

    Example:
        >>> pairs = DomainPairDataset(source["train"], target["train"])
        >>> trainer = DomainAdaptationTrainer(
        ...     model=model, args=training_args, train_dataset=pairs, eval_dataset=source["validation"],
        ...     data_collator=DomainPairCollator(create_collator(processor, "text")),
        ...     alignment_loss=DANNLoss(get_classifier(model).in_features),
        ... )
        >>> trainer.train()
        >>> trainer.evaluate(target["validation"], metric_key_prefix="target_eval")
    """

    def __init__(
        self,
        *args: Any,
        alignment_loss: Optional[nn.Module] = None,
        alignment_weight: float = 1.0,
        alignment_schedule: Literal["ganin", "constant"] = "ganin",
        schedule_gamma: float = 10.0,
        alignment_learning_rate: Optional[float] = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        if alignment_schedule not in ("ganin", "constant"):
            raise ValueError(f"alignment_schedule {alignment_schedule!r} must be 'ganin' or 'constant'.")
        self.alignment_loss = alignment_loss
        self.alignment_weight = alignment_weight
        self.alignment_schedule = alignment_schedule
        self.schedule_gamma = schedule_gamma
        self.alignment_learning_rate = alignment_learning_rate
        if not isinstance(self.data_collator, DomainPairCollator):
            self.data_collator = DomainPairCollator(self.data_collator)
        if isinstance(self.train_dataset, DomainPairDataset) and self.args.remove_unused_columns:
            # Pair items are {"source": ..., "target": ...}; column pruning by the forward signature would drop them.
            logger.info("Setting remove_unused_columns=False: training items are (source, target) pairs.")
            self.args.remove_unused_columns = False
        self._captured: list[torch.Tensor] = []
        self._capturing = False
        self._alignment_log: dict[str, float] = {}
        self._alignment_log_count = 0
        if alignment_loss is not None:
            if not isinstance(self.train_dataset, DomainPairDataset) and self.train_dataset is not None:
                raise ValueError(
                    "An alignment loss needs (source, target) training pairs: pass "
                    "train_dataset=DomainPairDataset(source_train, target_train)."
                )
            self.loss_is_scaled_for_ga = False  # compute_loss returns per-batch means
            head = get_classifier(_base_model(self.model))
            head.register_forward_pre_hook(self._capture_head_input)
            self.add_callback(_AlignmentLossCallback(alignment_loss))

    # ---- features and coefficient -------------------------------------------------------------------

    def _capture_head_input(self, module: nn.Module, args: tuple) -> None:
        if self._capturing:
            self._captured.append(args[0])

    def alignment_coefficient(self) -> float:
        """w = alignment_weight · λ_p at the current training progress p = global_step / max_steps."""
        if self.alignment_schedule == "constant":
            return self.alignment_weight
        progress = self.state.global_step / self.state.max_steps if self.state.max_steps else 0.0
        return self.alignment_weight * ganin_coefficient(progress, self.schedule_gamma)

    # ---- loss ------------------------------------------------------------------------------------

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        domain_labels = inputs.pop("domain_labels", None)
        if domain_labels is None:
            if self.alignment_loss is not None and model.training:
                raise ValueError(
                    "DomainAdaptationTrainer got a training batch without domain labels; train on a "
                    "DomainPairDataset collated by DomainPairCollator."
                )
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
        if self.alignment_loss is None:
            raise ValueError("Training batches hold (source, target) pairs but no alignment_loss was given.")

        labels = inputs.pop("labels")  # (B,) for the source rows
        self._captured.clear()
        self._capturing = True
        try:
            outputs = model(**inputs)  # 2B rows: source then target
        finally:
            self._capturing = False
        if not self._captured:
            raise RuntimeError("The classification head did not run, so no features were captured.")
        features = self._captured[-1].flatten(1)  # (2B, D)
        self._captured.clear()

        is_source = domain_labels == 0  # (2B,)
        task_loss = nn.functional.cross_entropy(outputs.logits[is_source].float(), labels)
        coefficient = self.alignment_coefficient()
        if getattr(self.alignment_loss, "adversarial", False):
            self.alignment_loss.coefficient = coefficient
            weight = 1.0
        else:
            weight = coefficient
        alignment = self.alignment_loss(features, domain_labels)
        loss = task_loss + weight * alignment

        for key, value in (("task_loss", task_loss), ("alignment_loss", alignment)):
            self._alignment_log[key] = self._alignment_log.get(key, 0.0) + float(value.detach())
        self._alignment_log["alignment_coefficient"] = coefficient
        self._alignment_log_count += 1
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: Optional[float] = None) -> None:
        """Adds the mean task and alignment losses since the last log, and the current coefficient."""
        if "loss" in logs and self._alignment_log_count:
            n = self._alignment_log_count
            logs = {
                **logs,
                "task_loss": float(f"{self._alignment_log['task_loss'] / n:.4g}"),
                "alignment_loss": float(f"{self._alignment_log['alignment_loss'] / n:.4g}"),
                "alignment_coefficient": float(f"{self._alignment_log['alignment_coefficient']:.4g}"),
            }
            self._alignment_log, self._alignment_log_count = {}, 0
        super().log(logs, start_time)

    # ---- optimizer and resume -----------------------------------------------------------------

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        if self.optimizer is not None:
            return self.optimizer
        optimizer = super().create_optimizer(model)
        params = [p for p in self.alignment_loss.parameters() if p.requires_grad] if self.alignment_loss else []
        if params:
            lr = self.alignment_learning_rate or self.head_learning_rate or self.args.learning_rate
            optimizer.add_param_group({"params": params, "lr": lr, "weight_decay": self.args.weight_decay})
            logger.info("Alignment loss parameters: %d tensors at learning rate %g", len(params), lr)
        return optimizer

    def train(self, resume_from_checkpoint: Optional[str | bool] = None, *args: Any, **kwargs: Any):
        if self.alignment_loss is not None:
            self.alignment_loss.to(self.args.device)
            checkpoint = resume_from_checkpoint
            if checkpoint is True:
                checkpoint = get_last_checkpoint(self.args.output_dir)
            if isinstance(checkpoint, str) and self.alignment_loss.state_dict():
                self._load_alignment_state(checkpoint)
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def _load_alignment_state(self, checkpoint: str) -> None:
        path = os.path.join(checkpoint, ALIGNMENT_STATE_NAME)
        if not os.path.isfile(path):
            logger.warning(
                "%s has no %s: the alignment loss (e.g. DANN's discriminator) restarts from its initial weights.",
                checkpoint,
                ALIGNMENT_STATE_NAME,
            )
            return
        self.alignment_loss.load_state_dict(load_file(path, device=str(self.args.device)))
        logger.info("Loaded the alignment loss state from %s", path)
