"""The tasks by name (`--task`): single-label, multi-label, regression, token classification, and object detection
(trained by `recipes/detect.py`).

Adding a task is one entry here plus its modules (label encoding, metrics, probe) named by the entry.
"""

from __future__ import annotations

from .._registry import LazyReference, Registry
from ..constants import DETECTION_METRICS, MULTI_LABEL_METRICS, REGRESSION_METRICS, TOKEN_CLASSIFICATION_METRICS
from .task import Task

__all__ = ["TASKS", "AUTO_TASK", "TASK_CHOICES"]

# `--task auto`: read the task from the data (`hf_transfer.data.targets.resolve_task`).
AUTO_TASK = "auto"


def _classes(names: list[str]) -> str:
    return f"{len(names)} labels: {', '.join(names[:20])}"


def _any_classes(names: list[str]) -> str:
    return f"multi-label, any of {len(names)} labels per input: {', '.join(names[:20])}"


def _target(names: list[str]) -> str:
    return f"regression of `{', '.join(names)}`, predicted in its own units"


def _entity_types(tags: list[str]) -> list[str]:
    return sorted({tag[2:] for tag in tags if tag != "O"})


def _tags(names: list[str]) -> str:
    types = _entity_types(names)
    return f"token classification, {len(names)} IOB tags of {len(types)} entity types: {', '.join(types[:20])}"


_SEQUENCE_MODELS = {"text": "AutoModelForSequenceClassification", "vision": "AutoModelForImageClassification"}
_CLASSIFICATION_TAGS = {"text": "text-classification", "vision": "image-classification"}

TASKS: Registry[Task] = Registry("task", "--task")
TASKS.register(
    Task(
        name="single_label",
        probe=LazyReference("hf_transfer.probing.fitters:fit_logistic"),
        compute_metrics=LazyReference("hf_transfer.metrics.task_metrics:score_classes"),
        encode_labels=LazyReference("hf_transfer.data.label_encoding:encode_classes"),
        summarize_labels=LazyReference("hf_transfer.data.label_encoding:classes_summary"),
        description="one class per row",
        label_kind="class",
        problem_type=None,
        model_classes=_SEQUENCE_MODELS,
        pipeline_tags=_CLASSIFICATION_TAGS,
        decision="argmax",
        metrics=("accuracy", "f1"),
        describe_outputs=_classes,
    )
)
TASKS.register(
    Task(
        name="multi_label",
        probe=LazyReference("hf_transfer.probing.fitters:fit_one_vs_rest"),
        compute_metrics=LazyReference("hf_transfer.metrics.task_metrics:score_class_lists"),
        encode_labels=LazyReference("hf_transfer.data.label_encoding:encode_class_lists"),
        summarize_labels=LazyReference("hf_transfer.data.label_encoding:class_lists_summary"),
        description="any number of classes per row (BCE per label; decision thresholds chosen on validation and saved)",
        label_kind="classes",
        problem_type="multi_label_classification",
        model_classes=_SEQUENCE_MODELS,
        pipeline_tags=_CLASSIFICATION_TAGS,
        decision="thresholds",
        metrics=MULTI_LABEL_METRICS,
        batch_mean_loss=LazyReference("hf_transfer.tasks.losses:multi_label_loss"),
        per_label_scores="label",
        describe_outputs=_any_classes,
    )
)
TASKS.register(
    Task(
        name="regression",
        probe=LazyReference("hf_transfer.probing.fitters:fit_ridge"),
        compute_metrics=LazyReference("hf_transfer.metrics.task_metrics:score_numbers"),
        encode_labels=LazyReference("hf_transfer.data.label_encoding:encode_numbers"),
        summarize_labels=LazyReference("hf_transfer.data.label_encoding:numbers_summary"),
        description="one number per row (MSE on standardised targets; the model predicts raw units)",
        label_kind="number",
        problem_type="regression",
        model_classes=_SEQUENCE_MODELS,
        pipeline_tags=_CLASSIFICATION_TAGS,
        decision="value",
        metrics=REGRESSION_METRICS,
        headline_higher_is_better=False,  # rmse: an error
        batch_mean_loss=LazyReference("hf_transfer.tasks.losses:regression_loss"),
        describe_outputs=_target,
    )
)
TASKS.register(
    Task(
        name="token_classification",
        probe=LazyReference("hf_transfer.probing.fitters:fit_logistic"),
        compute_metrics=LazyReference("hf_transfer.metrics.task_metrics:score_word_tags"),
        encode_labels=LazyReference("hf_transfer.data.label_encoding:encode_word_tags"),
        summarize_labels=LazyReference("hf_transfer.data.label_encoding:word_tags_summary"),
        description="a tag per word (NER; entity-level seqeval scores)",
        label_kind="tags",
        problem_type=None,
        model_classes={"text": "AutoModelForTokenClassification"},
        pipeline_tags={"text": "token-classification"},
        decision="argmax",
        metrics=TOKEN_CLASSIFICATION_METRICS[2:3] + TOKEN_CLASSIFICATION_METRICS[:2] + TOKEN_CLASSIFICATION_METRICS[3:],
        per_label_scores="entity type",
        describe_outputs=_tags,
        pipeline_usage=(
            "from transformers import pipeline\n\n"
            'ner = pipeline("token-classification", model="{repo_id}", aggregation_strategy="simple")\n'
            'entities = ner("a sentence")  # [{{"entity_group": ..., "word": ..., "start": ..., "end": ..., "score": ...}}]'
        ),
    )
)


def _boxes(names: list[str]) -> str:
    return f"object detection, boxes of {len(names)} classes: {', '.join(names[:20])}"


TASKS.register(
    Task(
        name="object_detection",
        probe=None,
        compute_metrics=LazyReference("hf_transfer.detection.metrics:score_detections"),
        encode_labels=LazyReference("hf_transfer.detection.data:encode_objects"),
        summarize_labels=LazyReference("hf_transfer.detection.data:objects_summary"),
        description="boxes with a class each (a DETR-family detector; COCO mAP by torchmetrics); recipes/detect.py",
        label_kind="boxes",
        problem_type=None,
        model_classes={"vision": "AutoModelForObjectDetection"},
        pipeline_tags={"vision": "object-detection"},
        decision="boxes",
        metrics=DETECTION_METRICS,
        per_label_scores="class",
        per_label_metric="ap",
        describe_outputs=_boxes,
        recipe="detect",
        pipeline_usage=(
            "from transformers import pipeline\n\n"
            'detector = pipeline("object-detection", model="{repo_id}")\n'
            'objects = detector("image.png", threshold=0.5)  # [{{"score": ..., "label": ..., "box": {{"xmin": ..., ...}}}}]'
        ),
    )
)

# What `--task` accepts: a task, or `auto`.
TASK_CHOICES: tuple[str, ...] = (AUTO_TASK, *TASKS.names())
