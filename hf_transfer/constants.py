"""Defaults and limits shared by argument dataclasses and the code behind them.

Plain values only: a config module reads them here instead of importing the implementation that uses them.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "Modality",
    "DEFAULT_L2_GRID",
    "MIN_TEMPERATURE",
    "TASKS",
    "PROBLEM_TYPES",
    "REGRESSION_METRICS",
    "MULTI_LABEL_METRICS",
    "TOKEN_CLASSIFICATION_METRICS",
    "DETECTION_METRICS",
    "DEFAULT_LABEL_SEPARATOR",
    "HP_SEARCH_PREFIX",
    "SEMI_SUPERVISED_PREFIX",
    "PSEUDO_LABEL_PREFIX",
]

# What a backbone reads: text (a tokenizer) or images (an image processor); one entry each in
# `hf_transfer.modalities.MODALITIES`.
Modality = Literal["text", "vision"]

# What a label column can hold, the task a model is transferred to: one class per row, any number of classes per
# row, a number per row, or one tag per word (NER).
TASKS: tuple[str, ...] = ("single_label", "multi_label", "regression", "token_classification")
# transformers' `config.problem_type` of each task's head (single-label and token classification keep the default).
PROBLEM_TYPES: dict[str, str] = {"regression": "regression", "multi_label": "multi_label_classification"}
# What a regression is scored with (hf_transfer.metrics.regression).
REGRESSION_METRICS: tuple[str, ...] = ("rmse", "mae", "r2", "pearson", "spearman")
# What a multi-label classifier is scored with (hf_transfer.metrics.multi_label), besides one f1_<label> per label.
MULTI_LABEL_METRICS: tuple[str, ...] = ("micro_f1", "macro_f1", "map", "subset_accuracy")
# What token classification (NER) is scored with (hf_transfer.metrics.token_classification): seqeval's entity-level
# precision / recall / F1 and token accuracy, besides one f1_<entity type> per type.
TOKEN_CLASSIFICATION_METRICS: tuple[str, ...] = ("precision", "recall", "f1", "accuracy")
# Object detection (torchmetrics' MeanAveragePrecision, COCO's definitions): mAP over IoU 0.50:0.95 first.
DETECTION_METRICS: tuple[str, ...] = ("map", "map_50", "map_75", "mar_100")
# How several labels are written in one string cell (`sports,politics`) unless --label_separator says otherwise.
DEFAULT_LABEL_SEPARATOR = ","
# The keys of `all_results.json` a hyperparameter search wrote (`hf_transfer.finetuning.search`): the run record, the
# model card and compare's cells read them by this prefix.
HP_SEARCH_PREFIX = "hp_search_"
# The keys of `all_results.json` about the unlabelled pool and its pseudo-labels (`hf_transfer.semi_supervised`), read
# by this prefix into the run record and the card.
SEMI_SUPERVISED_PREFIX = "semi_supervised_"
# The keys of `all_results.json` target self-training wrote (recipes/domain_adapt.py): the run record and the model
# card read them by this prefix.
PSEUDO_LABEL_PREFIX = "target_pseudo_label"

# Weight decay strengths (lambda in  CE + lambda/2 * ||W||^2 ) tried from strongest to weakest by the linear probe.
DEFAULT_L2_GRID: tuple[float, ...] = tuple(10.0**k for k in range(1, -7, -1))

# Below this a softmax over cosines is a hard max: gradients vanish except for the hardest negative and
# logits reach 1e4, beyond what half precision represents.
MIN_TEMPERATURE = 1e-3
