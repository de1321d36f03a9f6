"""`load_transfer_model`: the one loading path of the classification recipes (finetune, domain_adapt, maml).

It ties the model layer together for a recipe: resolve the name, check the model fits the data, load the
processor and a classifier for the data's labels (a stock head, or a pooled one), and report which layers are new
and which are the task head.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Optional

from transformers import PreTrainedModel

from ..errors import ModelLoadError
from ..modalities import MODALITIES
from ..models import (
    Modality,
    ModelArguments,
    head_module_names,
    infer_model_modality,
    is_builtin_model,
    load_classification_model,
    load_config,
    load_processor,
    resolve_model_path,
)
from ..models.pooled_classifier import load_pooled_classifier
from ..models.pooling import read_sentence_transformers_pooling
from ..models.pooling_modes import HEAD_POOLING, POOLING_MODES
from ..processing import set_image_size
from ..tasks import TASKS
from .checks import check_modality_match

__all__ = ["TransferModel", "load_transfer_model"]

logger = logging.getLogger(__name__)


@dataclass
class TransferModel:
    """What a transfer recipe works on: the resolved checkpoint, its modality, its processor and a classifier.

    `new_modules` are the classifier's layers that the checkpoint lacked; `head_modules` the task head that
    LoRA trains and saves in full (`hf_transfer.models.heads`).
    """

    path: str
    modality: Modality
    processor: Any
    model: PreTrainedModel
    new_modules: list[str] = field(default_factory=list)
    head_modules: list[str] = field(default_factory=list)


def load_transfer_model(
    model_args: ModelArguments,
    label_names: list[str],
    data_modality: Modality,
    *,
    replace_head: Optional[bool] = None,
    image_size: Optional[int] = None,
    main_process_first: Any = None,
    pooling: str = "head",
    task: str = "single_label",
) -> TransferModel:
    """Resolve `--model_name_or_path`, check it fits the data, and load its processor and a classifier for `label_names`.

    The one loading path of the recipes: a built-in alias is converted once (under `main_process_first`, e.g.
    `training_args.main_process_first`, so one process does it), a model of the wrong modality for the data
    is an error naming both, the head is new for the built-ins (`replace_head` defaults to that) and checked
    against the labels otherwise, and vision inputs are resized to `image_size` when given.

    `pooling` (text): `head` keeps the stock classification head; a mode of `hf_transfer.models.pooling` builds a
    `PooledClassifier` (saved in sentence-transformers' format); `auto` is the pooling of a sentence-transformers
    checkpoint when it ships one, else `head`. `task` (a name of `hf_transfer.tasks.TASKS`): the head's kind
    (`load_classification_model`); a per-token task always keeps the stock per-token head.
    """
    guard = main_process_first(desc="resolving the model") if main_process_first else contextlib.nullcontext()
    with guard:
        path = resolve_model_path(
            model_args.model_name_or_path,
            model_args.cache_dir,
            model_args.model_revision,
            model_args.token,
            model_args.trust_remote_code,
        )
    modality = infer_model_modality(load_config(path, model_args))
    check_modality_match(model_args.model_name_or_path, modality, data_modality)
    processor = load_processor(path, modality, model_args)
    modality_entry = MODALITIES.get(modality)
    if replace_head is None:
        replace_head = is_builtin_model(model_args.model_name_or_path)
    task_entry = TASKS.get(task)
    task_entry.check_modality(modality)
    if task_entry.per_token and pooling not in ("auto", HEAD_POOLING):
        raise ModelLoadError(
            f"--pooling {pooling} pools a sentence into one vector; token classification tags every token. Drop "
            "--pooling (or pass --pooling head)."
        )
    if pooling == "auto":
        pooling = (
            read_sentence_transformers_pooling(path) if modality_entry.sentence_transformers else None
        ) or HEAD_POOLING
        pooling = HEAD_POOLING if task_entry.per_token else pooling
    if pooling != HEAD_POOLING:
        if not modality_entry.pools_tokens or POOLING_MODES.get(pooling).pool is None:
            pools_itself = f" ({modality_entry.backbone_phrase}'s head pools itself)."
            raise ModelLoadError(
                f"--pooling {pooling} applies to text backbones with token states; use --pooling head"
                + (pools_itself if not modality_entry.pools_tokens else " for BERT's pooler.")
            )
        logger.info("Classifier on %s pooling (saved in sentence-transformers' format)", pooling)
        model = load_pooled_classifier(
            path,
            pooling,
            label_names,
            task_entry.problem_type,
            cache_dir=model_args.cache_dir,
            revision=model_args.model_revision,
            token=model_args.token,
            trust_remote_code=model_args.trust_remote_code,
        )
        new_modules = ["classifier"]
    else:
        model, new_modules = load_classification_model(
            path, label_names, model_args, replace_head=replace_head, task=task
        )
    if modality_entry.uses_image_size and image_size:
        processor = set_image_size(processor, model, image_size)
    return TransferModel(
        path=path,
        modality=modality,
        processor=processor,
        model=model,
        new_modules=new_modules,
        head_modules=head_module_names(model, new_modules),
    )
