"""Classification models: always a stock `AutoModelFor{Sequence,Image}Classification`, so a model trained here
loads anywhere with plain transformers; a checkpoint's existing head is checked against the data's labels."""

from __future__ import annotations

from typing import Optional

import transformers
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

from ..errors import ModelLoadError
from ..tasks import TASKS
from .arguments import ModelArguments
from .heads import newly_initialized_modules
from .loading import infer_model_modality, load_config, readable_weights

__all__ = ["create_classification_model", "load_classification_model", "count_parameters"]


def _has_trained_head(config: PretrainedConfig) -> bool:
    architectures = getattr(config, "architectures", None) or []
    heads = ("ForSequenceClassification", "ForImageClassification", "ForTokenClassification")
    return any(a.endswith(heads) for a in architectures) or (
        getattr(config, "model_type", None) == "timm_wrapper" and getattr(config, "num_labels", 0) > 2
    )


def _is_default_label_names(id2label: dict) -> bool:
    return all(str(name) == f"LABEL_{i}" for i, name in id2label.items())


def create_classification_model(
    path: str,
    label_names: list[str],
    model_args: Optional[ModelArguments] = None,
    *,
    replace_head: bool = False,
) -> PreTrainedModel:
    """A stock `AutoModelFor{Sequence,Image}Classification` with a head for `label_names`.

    A checkpoint that already has a head for other labels is an error unless `replace_head` (the
    built-in backbones) or `--ignore_mismatched_sizes` says to replace it, so a model fine-tuned on
    one label set is never silently re-used for another.
    """
    return load_classification_model(path, label_names, model_args, replace_head=replace_head)[0]


def load_classification_model(
    path: str,
    label_names: list[str],
    model_args: Optional[ModelArguments] = None,
    *,
    replace_head: bool = False,
    task: str = "single_label",
) -> tuple[PreTrainedModel, list[str]]:
    """`create_classification_model`, plus the paths of the modules the checkpoint lacked (newly initialised).

    Those modules are random until trained: LoRA must train and save them, a probe must not read them
    (`hf_transfer.models.heads`). `task` (a name of `hf_transfer.tasks.TASKS`) picks the head: its entry's
    `AutoModelFor...` class for the modality (a tag per token for token classification), one output per name in
    `label_names`, and transformers' `problem_type` of the task (BCE per label, or MSE for regression).
    """
    task_entry = TASKS.get(task)
    problem_type = task_entry.problem_type
    model_args = model_args or ModelArguments(model_name_or_path=path)
    config = load_config(path, model_args)
    modality = infer_model_modality(config)
    num_labels = len(label_names)
    replace_head = replace_head or model_args.ignore_mismatched_sizes
    if _has_trained_head(config) and not replace_head:
        old = [str(config.id2label[i]) for i in sorted(config.id2label)]
        if len(old) != num_labels:
            raise ModelLoadError(
                f"{path!r} has a classification head for {len(old)} labels but the data has {num_labels} "
                f"({', '.join(label_names[:10])}). Pass --ignore_mismatched_sizes to train a new head."
            )
        if not _is_default_label_names(config.id2label) and old != list(label_names):
            raise ModelLoadError(
                f"{path!r} was trained for labels {old} but the data's labels are {list(label_names)}. "
                "Rename the data's labels to match, or pass --ignore_mismatched_sizes to train a new head."
            )
    id2label = {i: name for i, name in enumerate(label_names)}
    label2id = {name: i for i, name in id2label.items()}
    auto_cls = getattr(transformers, task_entry.model_class(modality))
    with readable_weights(path):
        model, loading_info = auto_cls.from_pretrained(
            path,
            output_loading_info=True,
            num_labels=num_labels,
            id2label=id2label,
            label2id=label2id,
            ignore_mismatched_sizes=replace_head,
            **({"problem_type": problem_type} if problem_type else {}),
            cache_dir=model_args.cache_dir,
            revision=model_args.model_revision,
            token=model_args.token,
            trust_remote_code=model_args.trust_remote_code,
        )
    if getattr(model.config, "model_type", None) == "timm_wrapper":
        # timm keeps its own copy of the class names; keep it in step with id2label.
        model.config.label_names = list(label_names)
    return model, newly_initialized_modules(model, loading_info)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
