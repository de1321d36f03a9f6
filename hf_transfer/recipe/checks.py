"""Checks that stop a run at its start: the arguments, before any data or model is loaded, and whether the
model fits the data, before anything is trained.

transformers checks some training arguments only when they are used: a negative learning rate fails when the
optimizer is built, a batch size of 0 in the first `DataLoader`, a missing `--resume_from_checkpoint` after the
model is loaded, an `--output_dir` that is a file when the first checkpoint is written. Each of those is a
minutes-late traceback; here each is one line naming the fix, at the start of the run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from transformers import TrainingArguments

from ..errors import ConfigError, DataError
from ..modalities import MODALITIES

__all__ = [
    "check_training_arguments",
    "check_output_dir",
    "check_modality_match",
    "sharding_engine",
    "refuse_under_sharding",
    "trains_nothing",
    "training_warnings",
]

logger = logging.getLogger(__name__)


def trains_nothing(args: TrainingArguments) -> bool:
    """`--num_train_epochs 0` without `--max_steps`: the run saves its starting point (a legitimate baseline)."""
    return args.max_steps <= 0 and args.num_train_epochs == 0


def training_warnings(args: TrainingArguments) -> list[str]:
    """Legitimate settings whose result a user may not expect (logged once logging is set up)."""
    warnings = []
    if trains_nothing(args):
        warnings.append(
            "--num_train_epochs 0: nothing is trained; the saved model is the starting point and the "
            "results say trained: false."
        )
    return warnings


def check_output_dir(output_dir: str | os.PathLike) -> None:
    """`output_dir` is a folder, or can be created, and can be written to."""
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--output_dir {output_dir} is a file, not a folder; pass a folder path.")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"--output_dir {output_dir} lies under the file {existing}; pass a folder path.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"--output_dir {output_dir} cannot be written ({existing} is read-only for this user); "
            "pass a folder you can write to."
        )


def check_training_arguments(args: TrainingArguments) -> None:
    """Values transformers accepts at parse time but fails on later (see the module docstring)."""
    if args.learning_rate < 0:
        raise ConfigError(f"--learning_rate must be positive (or 0 to train nothing); got {args.learning_rate}.")
    for flag in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        if getattr(args, flag) <= 0:
            raise ConfigError(f"--{flag} must be a positive integer; got {getattr(args, flag)}.")
    if args.num_train_epochs < 0:
        raise ConfigError(f"--num_train_epochs must be 0 or more; got {args.num_train_epochs}.")
    checkpoint = args.resume_from_checkpoint
    if checkpoint:
        if not Path(checkpoint).is_dir():
            raise ConfigError(
                f"--resume_from_checkpoint {checkpoint} does not exist; pass a checkpoint-N folder of "
                "an earlier run, or leave the flag out to resume from the newest one in --output_dir."
            )
        if not (Path(checkpoint) / "trainer_state.json").is_file():
            raise ConfigError(
                f"--resume_from_checkpoint {checkpoint} is no complete checkpoint (no trainer_state.json); "
                "pass a checkpoint-N folder written by a run."
            )
    engine = sharding_engine(args)
    if engine is not None and not _has_accelerator(args):
        raise ConfigError(
            f"{engine} needs GPUs: accelerate shards only on accelerator devices, so on CPU this run would train with "
            "DDP, every process holding the whole model. Leave --fsdp / --deepspeed out on CPU (DDP: accelerate "
            "launch --cpu --num_processes N), or run on GPUs with recipes/accelerate_configs/fsdp2.yaml."
        )
    check_output_dir(args.output_dir)


def check_modality_match(model_name: str, model_modality: str, data_modality: str) -> None:
    """A text model on images (or the reverse) stops before anything is trained, naming both."""
    if MODALITIES.get(model_modality) is not MODALITIES.get(data_modality):
        raise DataError(
            f"{model_name} is a {model_modality} model but the data is {data_modality}; "
            "pick a model and a dataset of the same modality."
        )


def sharding_engine(args: TrainingArguments) -> str | None:
    """`FSDP` or `DeepSpeed` when the run shards the model (transformers' `--fsdp` / `--deepspeed`, or an accelerate
    config that `accelerate launch` exported), else None."""
    if args.fsdp or os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true"):
        return "FSDP"
    if args.deepspeed or os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() in ("1", "true"):
        return "DeepSpeed"
    return None


def refuse_under_sharding(args: TrainingArguments, feature: str, why: str, instead: str) -> None:
    """A feature that has not been made to work on sharded parameters stops the run at its start, naming why and
    what to do instead, rather than training something other than what was asked."""
    engine = sharding_engine(args)
    if engine is not None:
        raise ConfigError(f"{feature} does not run under {engine}: {why}. {instead}")


def _has_accelerator(args: TrainingArguments) -> bool:
    import torch

    if args.use_cpu:
        return False
    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())
