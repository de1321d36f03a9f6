"""`Task`: everything that differs between the tasks a backbone is transferred to, in one entry.

A task is what a row's label is: one class, any number of classes, a number, or a tag per word. What follows from
that — the transformers head and its `problem_type`, how labels are encoded, the probe, the loss, the metrics and
the decision rule, the pipeline tag, what the model card says — is written here once, so the rest of the toolkit
asks the entry (`TASKS.get(task).per_token`) instead of comparing task names. Implementations are named as
`module:function` and imported when used: argument dataclasses read this module for free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal, Optional

from .._registry import LazyReference
from ..errors import ConfigError

__all__ = ["Task", "LabelKind", "Decision"]

# What one row's label is.
LabelKind = Literal["class", "classes", "number", "tags", "boxes"]
# How a prediction is read from the head's outputs: the top class, a threshold per label, the value itself, or
# scored boxes (the image processor's post-processing).
Decision = Literal["argmax", "thresholds", "value", "boxes"]


@dataclass(frozen=True)
class Task:
    """A task a backbone is transferred to.

    Args:
        name: its `--task` value.
        description: one line for `--help` and the docs.
        label_kind: what one row's label is (`class`, `classes`, `number`, `tags`, `boxes`: boxes with a class each).
        problem_type: transformers' `config.problem_type` of its head; None keeps transformers' default.
        model_classes: the stock `AutoModelFor...` class per modality that loads the saved model.
        pipeline_tags: the Hub pipeline tag per modality (the card's metadata and `pipeline(...)`).
        decision: how a prediction is read from the outputs.
        probe: the probe fitted on frozen features (`hf_transfer.probing.fitters`): logistic regression, one per
            label, or ridge; None for a task no probe can solve (detection: its frozen-backbone strategy trains a
            neck and head instead).
        metrics: the metric names it is scored with (besides per-label ones), the first being the headline.
        headline_higher_is_better: whether a larger headline metric is a better model (False for an error such as
            RMSE): the direction a hyperparameter search optimises it in.
        batch_mean_loss: the loss `TransferTrainer` computes as a batch mean instead of the model's own (a multi-label
            loss summed over gradient-accumulation steps, a regression loss on standardised targets): `(logits,
            labels) -> loss`; None keeps the model's loss.
        per_label_scores: what the card's per-label table is per (`label`, `entity type`, `class`); None: no table.
        per_label_metric: the metric of that table, read from the results as `{split}_{metric}_{label}` (`f1`;
            detection's `ap`).
        encode_labels: `(splits, description, label_separator) -> splits` with `label` encoded for the task
            (`hf_transfer.data.label_encoding`).
        summarize_labels: `splits -> str`, the log line on what the labels hold.
        compute_metrics: `(outputs, references, *, thresholds, label_names, windows) -> {metric: value}`
            (`hf_transfer.metrics.task_metrics`).
        describe_outputs: `label_names -> str`, the card's one line on what the model outputs.
        recipe: the recipe that trains it (`finetune`; `detect` for detection, whose rows hold boxes).
        pipeline_usage: the card's usage snippet when the task is used through `pipeline(...)` (`{repo_id}` filled
            in); None: the model class and processor are shown.
    """

    name: str
    description: str
    label_kind: LabelKind
    problem_type: Optional[str]
    model_classes: dict[str, str]
    pipeline_tags: dict[str, str]
    decision: Decision
    probe: Optional[LazyReference]
    metrics: tuple[str, ...]
    encode_labels: LazyReference
    summarize_labels: LazyReference
    compute_metrics: LazyReference
    batch_mean_loss: Optional[LazyReference] = None
    per_label_scores: Optional[str] = None
    describe_outputs: Callable[[list[str]], str] = field(default=lambda names: f"{len(names)} labels")
    headline_higher_is_better: bool = True
    per_label_metric: str = "f1"
    recipe: str = "finetune"
    pipeline_usage: Optional[str] = None

    @property
    def has_classes(self) -> bool:
        """Its labels are classes (Mixup / CutMix mix them; budgets count rows per class)."""
        return self.label_kind in ("class", "classes", "tags")

    @property
    def classifies_rows(self) -> bool:
        """A row's label is one or several classes (Mixup / CutMix mix two rows' classes)."""
        return self.label_kind in ("class", "classes")

    @property
    def picks_one_class(self) -> bool:
        """Each prediction is one class of a softmax (label smoothing applies): a row's class, or a word's tag."""
        return self.label_kind in ("class", "tags")

    @property
    def one_class_per_row(self) -> bool:
        """One class per row (label smoothing, per-class label budgets, domain adaptation's classifiers)."""
        return self.label_kind == "class"

    @property
    def per_token(self) -> bool:
        """A label per word: token-level heads, collators and metrics."""
        return self.label_kind == "tags"

    @property
    def fits_decision_on_validation(self) -> bool:
        """Its decision rule is fitted on held-out rows (multi-label thresholds): a model trained on those rows would
        choose it on flattering scores, so fine-tuning keeps them out of training."""
        return self.decision == "thresholds"

    @property
    def headline_metric(self) -> str:
        return self.metrics[0]

    @property
    def headline_direction(self) -> str:
        """`maximize` or `minimize`: how a search optimises the headline metric (optuna's and Trainer's word)."""
        return "maximize" if self.headline_higher_is_better else "minimize"

    def model_class(self, modality: str) -> str:
        """The `AutoModelFor...` class name that loads this task's model of `modality`."""
        self.check_modality(modality)
        return self.model_classes[modality]

    def pipeline_tag(self, modality: str) -> str:
        self.check_modality(modality)
        return self.pipeline_tags[modality]

    def check_modality(self, modality: str) -> None:
        """A `ConfigError` when this task has no model for `modality` (token classification of images)."""
        if modality not in self.model_classes:
            raise ConfigError(
                f"--task {self.name} is for {' or '.join(self.model_classes)} models; this is a {modality} model. "
                "Choose another --task or another --model_name_or_path."
            )
