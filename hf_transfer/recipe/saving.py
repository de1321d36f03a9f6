"""Writing a trained classifier and its processor into a folder, in the format users load it back with.

Stock classification models (and peft adapters) go out through `save_pretrained`; a `PooledClassifier`, bare
or under peft, as a sentence-transformers model (`hf_transfer.models.pooled_classifier`). Every write, the processor's
too, goes through a staging folder (`hf_transfer.outputs.publish_directory`), so the folder appears whole or not at
all; a disk that refuses the write (full, read-only) ends the run with one line naming the folder and the fix.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from torch import nn

from ..models.pooled_classifier import save_pooled_classifier, unwrap_pooled_classifier
from ..models.pooling_modes import HEAD_POOLING
from ..models.thresholds import write_decision_thresholds
from ..outputs import publish_directory, remove_incomplete_checkpoints, write_errors_as_one_line
from .run_guard import where_the_work_is

if TYPE_CHECKING:
    from ..finetuning import TransferTrainer

__all__ = [
    "classifier_pooling",
    "saved_format_info",
    "save_classifier",
    "publish_classifier",
    "is_sentence_transformers_classifier",
    "publish_trained_model",
    "publish_merged_lora",
    "checkpoint_writes",
]


def is_sentence_transformers_classifier(model: nn.Module) -> bool:
    """Whether `model` is saved in sentence-transformers' format (a `PooledClassifier`, bare or under peft)."""
    return unwrap_pooled_classifier(model) is not None


def classifier_pooling(model: nn.Module) -> str:
    """What the classifier reads: `head` (the stock head) or the pooling of a `PooledClassifier`."""
    pooled = unwrap_pooled_classifier(model)
    return pooled.pooling if pooled is not None else HEAD_POOLING


def saved_format_info(model: nn.Module) -> dict:
    """What the run record (`hf_transfer.run_record.RunRecord`) needs to know of the saved format: for a
    sentence-transformers classifier its pooling, so the card shows that usage; nothing for a stock model."""
    pooling = classifier_pooling(model)
    return {"sentence_transformers": True, "pooling": pooling} if pooling != HEAD_POOLING else {}


def save_classifier(
    model: nn.Module,
    processor: Any,
    directory: str | Path,
    *,
    max_seq_length: int = 128,
    adapter_subdir: str | None = None,
) -> None:
    """`model` and `processor` into `directory`: `save_pretrained`, or sentence-transformers' format (a LoRA model
    merged, its adapter also kept in `adapter_subdir` when given); a multi-label model's decision thresholds go
    into `decision_thresholds.json` too (`hf_transfer.models.thresholds`)."""
    write_decision_thresholds(model, directory)
    if is_sentence_transformers_classifier(model):
        save_pooled_classifier(model, processor, directory, max_seq_length, adapter_subdir=adapter_subdir)
        return
    model.save_pretrained(directory)
    processor.save_pretrained(directory)


def publish_classifier(
    model: nn.Module,
    processor: Any,
    output_dir: str | Path,
    *,
    max_seq_length: int = 128,
    adapter_subdir: str | None = None,
    subdir: str | None = None,
    also_write: Callable[[str], Any] | None = None,
) -> Path:
    """`save_classifier` into a staging folder, then moved into `output_dir` (or `output_dir/subdir`) file by file,
    so the folder appears whole or not at all; `also_write(staging_dir)` adds the recipe's own files (MAML's state).
    Main process only."""

    def write(staging: str) -> None:
        save_classifier(model, processor, staging, max_seq_length=max_seq_length, adapter_subdir=adapter_subdir)
        if also_write is not None:
            also_write(staging)

    return publish_directory(output_dir, write, subdir=subdir, note=where_the_work_is)


def publish_trained_model(
    trainer: TransferTrainer, processor: Any, output_dir: str | Path, *, max_seq_length: int = 128
) -> None:
    """The model a `Trainer` trained, with its processor, published into `output_dir` (every process calls it).

    Stock models go through `trainer.save_model` (a peft adapter stays an adapter); a `PooledClassifier` is written
    by the main process in sentence-transformers' format, LoRA folded in (that format reads no adapter).
    """
    should_save = trainer.args.should_save
    model = trainer.task_model  # without what only training needs (domain_adapt's discriminator)
    if is_sentence_transformers_classifier(model):
        if should_save:
            publish_classifier(model, processor, output_dir, max_seq_length=max_seq_length)
        return

    def write(staging: str) -> None:
        trainer.save_model(staging)
        if should_save:
            write_decision_thresholds(model, staging)
            processor.save_pretrained(staging)

    publish_directory(output_dir, write, note=where_the_work_is)


def publish_merged_lora(model: nn.Module, processor: Any, output_dir: str | Path) -> None:
    """`--merge_lora`: the adapters folded into a plain model in `output_dir/merged` (main process; after the last
    evaluation, since merging changes `model` in place). A sentence-transformers classifier is saved merged already."""
    if is_sentence_transformers_classifier(model):
        return
    publish_classifier(model.merge_and_unload(), processor, output_dir, subdir="merged")


def checkpoint_writes(training_args: Any) -> AbstractContextManager[None]:
    """Around training: a checkpoint the disk refuses to write (full, read-only) ends the run with one line naming
    the folder and the fix, the checkpoint it cut off removed (main process), so none half-written is resumed from or
    passes for a saved model; the newest complete one is named when there is one."""
    output_dir = training_args.output_dir
    cleanup = (lambda: remove_incomplete_checkpoints(output_dir)) if training_args.should_save else None
    return write_errors_as_one_line(output_dir, "a checkpoint", cleanup=cleanup, note=where_the_work_is)
