"""`DomainAdaptationTrainer`: the task loss on labelled source rows plus an alignment loss on both domains.

Each training batch comes from a `DomainPairDataset` through a `DomainPairCollator`: B labelled source rows
and B unlabelled target rows in one forward pass (so batch-norm layers see both domains, as in DANN). A
forward pre-hook on the classification head (`hf_transfer.models.get_classifier`) captures the features
the head sees for all 2B rows; the alignment loss acts on them (`DANNLoss`, `CORALLoss`, `MMDLoss`), on the
logits (`MCCLoss`) or on both (`CDANLoss`), and target self-training adds a pseudo-label term on the target logits.
This works for any stock `AutoModelFor{Sequence,Image}Classification`, plain or wrapped in LoRA adapters.

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
from ..pseudo_labels import ClassThresholds
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

    Target self-training (`self_training`, on top of any loss or of none): each target row whose prediction
    passes its class's threshold (`ClassThresholds.select`, FlexMatch-style per-class thresholds with a floor)
    adds a cross-entropy term with its predicted class as the label,

        L += w_st · 1/B Σ_{target rows i} 1[max_k p_ik ≥ τ_{argmax p_i}] · CE(z_i, argmax p_i),

    from training progress `self_training_start` on (the thresholds track the pool from the first step). The
    pseudo-label is a constant; the gradient goes through the logits z_i only.

    Without `alignment_loss` and `self_training` it is a plain `TransferTrainer` (used for `source_only` and
    `target_oracle`). Evaluation batches are ordinary labelled batches: `evaluate` / `predict` work on either domain.

    Args:
        alignment_loss (`nn.Module`, *optional*): `DANNLoss`, `CORALLoss`, `MMDLoss`, `MCCLoss`, `CDANLoss`, or any
            module with `forward(*outputs named by its inputs attribute, domain_labels (N,)) -> scalar` (and
            `adversarial = True` when it reverses gradients itself through a `coefficient` attribute). Training
            data must then be a `DomainPairDataset`.
        self_training (`ClassThresholds`, *optional*): target self-training with these per-class thresholds over
            the target training split (`num_rows` = its length). Training data must be a `DomainPairDataset`.
        self_training_weight (`float`, defaults to 1.0): w_st.
        self_training_start (`float`, defaults to 0.0): training progress in [0, 1) from which the term is added.
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
        self_training: Optional[ClassThresholds] = None,
        self_training_weight: float = 1.0,
        self_training_start: float = 0.0,
        **kwargs: Any,
    ):
        if alignment_schedule not in ("ganin", "constant"):
            raise ValueError(f"alignment_schedule {alignment_schedule!r} must be 'ganin' or 'constant'.")
        if not 0.0 <= self_training_start < 1.0:
            raise ValueError(f"self_training_start {self_training_start} must lie in [0, 1).")
        train_dataset = kwargs.get("train_dataset")
        if alignment_loss is not None or self_training is not None:
            if train_dataset is not None and not isinstance(train_dataset, DomainPairDataset):
                raise ValueError(
                    "An alignment loss or target self-training needs (source, target) training pairs: pass "
                    "train_dataset=DomainPairDataset(source_train, target_train)."
                )
            if (
                self_training is not None
                and train_dataset is not None
                and self_training.num_rows != len(train_dataset.target)
            ):
                raise ValueError(
                    f"self_training tracks {self_training.num_rows} target rows but the target split has "
                    f"{len(train_dataset.target)}."
                )
            model = DomainAdaptationModel(model, alignment_loss)
        super().__init__(model, *args, **kwargs)
        self.alignment_loss = alignment_loss
        self.alignment_weight = alignment_weight
        self.alignment_schedule = alignment_schedule
        self.schedule_gamma = schedule_gamma
        self.alignment_learning_rate = alignment_learning_rate
        self.self_training = self_training
        self.self_training_weight = self_training_weight
        self.self_training_start = self_training_start
        # Each target row's pseudo-label at its latest visit, -1 when it did not pass its threshold.
        self._pseudo_labels = (
            torch.full((self_training.num_rows,), -1, dtype=torch.long) if self_training is not None else None
        )
        if not isinstance(self.data_collator, DomainPairCollator):
            self.data_collator = DomainPairCollator(self.data_collator)
        if isinstance(self.train_dataset, DomainPairDataset) and self.args.remove_unused_columns:
            # Pair items are {"source": ..., "target": ...}; column pruning by the forward signature would drop them.
            logger.info("Setting remove_unused_columns=False: training items are (source, target) pairs.")
            self.args.remove_unused_columns = False
        self._alignment_log: dict[str, float] = {}
        self._alignment_log_count = 0
        if isinstance(self.model, DomainAdaptationModel):
            self.loss_is_scaled_for_ga = False  # compute_loss returns per-batch means

    @property
    def task_model(self) -> nn.Module:
        """The classifier being adapted, without the alignment loss: what the run evaluates, saves and publishes."""
        return self.model.task_model if isinstance(self.model, DomainAdaptationModel) else self.model

    def training_progress(self) -> float:
        """p = global_step / max_steps, in [0, 1]."""
        return self.state.global_step / self.state.max_steps if self.state.max_steps else 0.0

    def alignment_coefficient(self) -> float:
        """w = alignment_weight · λ_p at the current training progress p = global_step / max_steps."""
        if self.alignment_schedule == "constant":
            return self.alignment_weight
        return self.alignment_weight * ganin_coefficient(self.training_progress(), self.schedule_gamma)

    def pseudo_label_summary(self) -> dict[str, Any]:
        """What target self-training ended with: how many target rows passed their class's threshold at their
        latest visit (and per class), and the per-class thresholds at the end. Empty without self-training."""
        if self.self_training is None:
            return {}
        kept = self._pseudo_labels[self._pseudo_labels >= 0]
        return {
            "target_pseudo_labelled_rows": int(kept.numel()),
            "target_pseudo_label_pool_rows": int(self._pseudo_labels.numel()),
            "target_pseudo_labelled_per_class": torch.bincount(kept, minlength=self.self_training.num_classes).tolist(),
            "target_pseudo_label_thresholds": [round(float(t), 4) for t in self.self_training.thresholds()],
            **self.self_training.balance_config(),
        }

    def pseudo_labels(self) -> torch.Tensor:
        """(target rows,) each target row's pseudo-label at its latest visit, -1 for none."""
        if self._pseudo_labels is None:
            raise ValueError("No target self-training in this run.")
        return self._pseudo_labels.clone()

    def _self_training_loss(self, target_logits: torch.Tensor, target_rows: Optional[torch.Tensor]) -> torch.Tensor:
        """The masked pseudo-label cross-entropy over the batch's target rows (0 before `self_training_start`)."""
        if target_rows is None:
            raise ValueError("Target self-training needs the target rows' positions: train on a DomainPairDataset.")
        probabilities = torch.softmax(target_logits.detach().float(), dim=1)  # (B, C)
        pseudo = self.self_training.select(probabilities, target_rows)
        rows = target_rows.detach().long().cpu()
        self._pseudo_labels[rows] = torch.where(pseudo.mask, pseudo.targets, torch.full_like(pseudo.targets, -1))
        self._alignment_log["pseudo_label_rate"] = self._alignment_log.get("pseudo_label_rate", 0.0) + float(
            pseudo.mask.float().mean()
        )
        if self.training_progress() < self.self_training_start:
            return target_logits.new_zeros(())
        mask = pseudo.mask.to(target_logits.device)
        losses = nn.functional.cross_entropy(
            target_logits.float(), pseudo.targets.to(target_logits.device), reduction="none"
        )  # (B,)
        return (losses * mask).sum() / len(mask)

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
        if not isinstance(self.model, DomainAdaptationModel):
            raise ValueError(
                "Training batches hold (source, target) pairs but neither an alignment_loss nor self_training was given."
            )

        labels = inputs.pop("labels")  # (B,) for the source rows
        target_rows = inputs.pop("target_rows", None)  # (B,) the target rows' positions in the target split
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
        logged = [("task_loss", task_loss), ("alignment_loss", alignment)]
        if self.self_training is not None:
            self_training_loss = self._self_training_loss(outputs.logits[~is_source], target_rows)
            loss = loss + self.self_training_weight * self_training_loss
            logged.append(("self_training_loss", self_training_loss))

        for key, value in logged:
            self._alignment_log[key] = self._alignment_log.get(key, 0.0) + float(value.detach())
        self._alignment_log["alignment_coefficient"] = coefficient
        self._alignment_log_count += 1
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: Optional[float] = None) -> None:
        """Adds the mean task, alignment (and self-training) losses and pseudo-label rate since the last log, and
        the current coefficient."""
        if "loss" in logs and self._alignment_log_count:
            n = self._alignment_log_count
            means = {k: v / n for k, v in self._alignment_log.items() if k != "alignment_coefficient"}
            means["alignment_coefficient"] = self._alignment_log["alignment_coefficient"]
            logs = {**logs, **{k: float(f"{v:.4g}") for k, v in means.items()}}
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
        alignment_loss = self.model.alignment_loss
        params = [p for p in alignment_loss.parameters() if p.requires_grad] if alignment_loss is not None else []
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
        if self.alignment_loss is not None and self.alignment_loss.state_dict():
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
