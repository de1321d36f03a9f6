"""`DomainAdaptationTrainer`: the task loss on labelled source rows plus an alignment loss on both domains.

Each training batch comes from a `DomainPairDataset` through a `DomainPairCollator`: B labelled source rows
and B unlabelled target rows in one forward pass (so batch-norm layers see both domains, as in DANN). A
forward pre-hook on the classification head (`hf_transfer.models.get_classifier`) captures the features
the head sees for all 2B rows; the alignment loss (`DANNLoss`, `CORALLoss`, `MMDLoss`) acts on them. This
works for any stock `AutoModelFor{Sequence,Image}Classification`, plain or wrapped in LoRA adapters.

The trainer wraps the task model and the alignment loss into one `DomainAdaptationModel`, so the alignment
loss's parameters (DANN's discriminator) are parameters of the module DDP / FSDP / DeepSpeed wrap: synced,
sharded and checkpointed by the engine like the backbone's, trained in an optimizer group with their own learning
rate. What is saved stays a plain transformers / peft checkpoint of the task model; the discriminator goes next to
it in each checkpoint (`alignment_loss.safetensors`, inside the engine's own checkpoint under FSDP / DeepSpeed), so
a resumed run continues with the same discriminator. `trainer.task_model` is the model the run publishes.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Any, Iterator, Literal, Optional

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..finetuning import TransferTrainer
from .data import DomainPairCollator, DomainPairDataset
from .losses import ganin_coefficient
from .model import DomainAdaptationModel

__all__ = ["ALIGNMENT_STATE_NAME", "DomainAdaptationTrainer"]

logger = logging.getLogger(__name__)

ALIGNMENT_STATE_NAME = "alignment_loss.safetensors"


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
        model: Optional[nn.Module] = None,
        *args: Any,
        alignment_loss: Optional[nn.Module] = None,
        alignment_weight: float = 1.0,
        alignment_schedule: Literal["ganin", "constant"] = "ganin",
        schedule_gamma: float = 10.0,
        alignment_learning_rate: Optional[float] = None,
        **kwargs: Any,
    ):
        if alignment_schedule not in ("ganin", "constant"):
            raise ValueError(f"alignment_schedule {alignment_schedule!r} must be 'ganin' or 'constant'.")
        train_dataset = kwargs.get("train_dataset")
        if alignment_loss is not None:
            if train_dataset is not None and not isinstance(train_dataset, DomainPairDataset):
                raise ValueError(
                    "An alignment loss needs (source, target) training pairs: pass "
                    "train_dataset=DomainPairDataset(source_train, target_train)."
                )
            model = DomainAdaptationModel(model, alignment_loss)
        super().__init__(model, *args, **kwargs)
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
        self._alignment_log: dict[str, float] = {}
        self._alignment_log_count = 0
        if alignment_loss is not None:
            self.loss_is_scaled_for_ga = False  # compute_loss returns per-batch means

    @property
    def task_model(self) -> nn.Module:
        """The classifier being adapted, without the alignment loss: what the run evaluates, saves and publishes."""
        return self.model.task_model if isinstance(self.model, DomainAdaptationModel) else self.model

    def alignment_coefficient(self) -> float:
        """w = alignment_weight · λ_p at the current training progress p = global_step / max_steps."""
        if self.alignment_schedule == "constant":
            return self.alignment_weight
        progress = self.state.global_step / self.state.max_steps if self.state.max_steps else 0.0
        return self.alignment_weight * ganin_coefficient(progress, self.schedule_gamma)

    # ---- loss ------------------------------------------------------------------------------------

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        domain_labels = inputs.get("domain_labels")
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
        coefficient = self.alignment_coefficient()
        if getattr(self.alignment_loss, "adversarial", False):
            self.alignment_loss.coefficient = coefficient
            weight = 1.0
        else:
            weight = coefficient
        outputs = model(**inputs)  # 2B rows, source then target, and the alignment loss of their features

        is_source = domain_labels == 0  # (2B,)
        task_loss = nn.functional.cross_entropy(outputs.logits[is_source].float(), labels)
        alignment = outputs.alignment_loss
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

    # ---- optimizer ---------------------------------------------------------------------------------

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        """`TransferTrainer`'s groups for the task model (head rate, layer decay), and one for the alignment loss."""
        if self.optimizer is not None:
            return self.optimizer
        if not isinstance(self.model, DomainAdaptationModel):
            return super().create_optimizer(model)
        optimizer = super().create_optimizer(self.model.task_model)
        params = [p for p in self.model.alignment_loss.parameters() if p.requires_grad]
        if params:
            lr = self.alignment_learning_rate or self.head_learning_rate or self.args.learning_rate
            optimizer.add_param_group({"params": params, "lr": lr, "weight_decay": self.args.weight_decay})
            logger.info("Alignment loss parameters: %d tensors at learning rate %g", len(params), lr)
        return optimizer

    # ---- saving and loading: the task model as a plain checkpoint, the alignment loss beside it ------------

    @contextmanager
    def _task_model_as_model(self) -> Iterator[None]:
        """Lets Trainer's own save / load code see the task model (a `PreTrainedModel` or `PeftModel`)."""
        wrapper = self.model
        self.model = wrapper.task_model
        try:
            yield
        finally:
            self.model = wrapper

    def _engine_checkpoints_the_model(self) -> bool:
        """FSDP and DeepSpeed save and load the whole wrapped module (discriminator included) themselves."""
        return bool(self.is_fsdp_enabled or self.is_deepspeed_enabled)

    def _save(self, output_dir: Optional[str] = None, state_dict: Optional[dict] = None) -> None:
        if not isinstance(self.model, DomainAdaptationModel):
            return super()._save(output_dir, state_dict)
        if state_dict is not None:  # gathered by the engine from the wrapper: keep the task model's entries
            prefix = "task_model."
            state_dict = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
        with self._task_model_as_model():
            super()._save(output_dir, state_dict)

    def _save_checkpoint(self, model, trial) -> None:
        super()._save_checkpoint(model, trial)
        state_dict = self.alignment_loss.state_dict() if self.alignment_loss is not None else {}
        if not state_dict or not self.args.should_save or self._engine_checkpoints_the_model():
            return
        folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        if not os.path.isdir(folder):
            return
        tmp = os.path.join(folder, f".{ALIGNMENT_STATE_NAME}.tmp")
        save_file({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, tmp)
        os.replace(tmp, os.path.join(folder, ALIGNMENT_STATE_NAME))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Optional[nn.Module] = None) -> None:
        wrapped = isinstance(self.model, DomainAdaptationModel) and model in (None, self.model)
        if not wrapped or self._engine_checkpoints_the_model():
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        super()._load_from_checkpoint(resume_from_checkpoint, self.model.task_model)
        if self.alignment_loss.state_dict():
            self._load_alignment_state(resume_from_checkpoint)

    def _load_best_model(self) -> None:
        if not isinstance(self.model, DomainAdaptationModel) or self._engine_checkpoints_the_model():
            return super()._load_best_model()
        with self._task_model_as_model():
            super()._load_best_model()

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
