"""One run per output folder, and a resume only into the run that wrote the checkpoints.

- **Lock.** Two runs into one `--output_dir` used to both exit 0 and leave a mixed folder that loads as neither.
  The main process holds an exclusive `flock` on `<output_dir>/.hf_transfer.lock` for the whole run; a second
  run stops at the start with one line naming the first one's pid. The kernel drops the lock when a process
  dies, so a killed run never leaves a stale lock behind.
- **Identity.** A rerun into a folder with checkpoints resumes from the newest one, which is only right when it
  is the same run. What decides the result (model, data and its files, the recipe's arguments, the training
  arguments that change the optimisation; not the epoch or step budget, which a resume may raise) is written
  to `<output_dir>/.hf_transfer_run.json`; a resume whose identity differs stops and names what changed.
- **Leftovers.** `.staging-*` folders of a killed `publish_directory` are removed once the lock is held.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Optional

from transformers import TrainingArguments

from ..errors import ConfigError
from ..outputs import find_last_checkpoint, write_json_atomic

__all__ = ["claim_output_dir", "release_output_dirs", "run_identity", "where_the_work_is", "IDENTITY_FILE", "LOCK_FILE"]

logger = logging.getLogger(__name__)

IDENTITY_FILE = ".hf_transfer_run.json"
LOCK_FILE = ".hf_transfer.lock"

# TrainingArguments fields that change what training computes (the rest: budget, logging, saving, hardware).
TRAINING_FIELDS = (
    "learning_rate",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "adam_epsilon",
    "max_grad_norm",
    "optim",
    "lr_scheduler_type",
    "warmup_ratio",
    "warmup_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "seed",
    "data_seed",
    "label_smoothing_factor",
    "fp16",
    "bf16",
)
# Fields of the recipes' own argument classes that do not change the result.
IGNORED_FIELDS = frozenset(
    {
        "cache_dir",
        "token",
        "feature_cache_dir",
        "feature_batch_size",
        "trust_remote_code",
        "num_test_episodes",
        "run_baselines",
        "probe_max_iter",
        "probe_l2_grid",
        "merge_lora",
        "per_device_eval_batch_size",
    }
)
FILE_FIELDS = ("train_file", "validation_file", "test_file", "train_dir", "validation_dir", "test_dir")

_held_locks: dict[str, Any] = {}  # output_dir -> open lock file, kept for the life of the process
_claimed: dict[str, float] = {}  # output_dir -> when this process claimed it (for `where_the_work_is`)


def _stamp(path: str) -> str:
    """Size and modification time of a data file, or of a folder's files (what a changed file changes)."""
    p = Path(path)
    if p.is_file():
        stat = p.stat()
        return f"{stat.st_size}:{int(stat.st_mtime)}"
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
        return f"{len(files)} files, {sum(f.stat().st_size for f in files)} bytes"
    return "missing"


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def run_identity(*arguments: Any) -> dict[str, Any]:
    """`{"ModelArguments.model_name_or_path": ..., "train_file stamp": ..., ...}` for the recipe's argument objects.

    Pass the dataclasses that describe the run (not `HubArguments`); of `TrainingArguments` only
    `TRAINING_FIELDS` count.
    """
    identity: dict[str, Any] = {}
    for args in arguments:
        section = type(args).__name__
        if isinstance(args, TrainingArguments):
            names = TRAINING_FIELDS
        else:
            names = tuple(f.name for f in dataclasses.fields(args) if f.name not in IGNORED_FIELDS)
        for name in names:
            value = getattr(args, name, None)
            identity[f"{section}.{name}"] = _plain(value)
            if name in FILE_FIELDS and value:
                identity[f"{section}.{name} (contents)"] = _stamp(value)
    return identity


def _lock(output_dir: Path) -> None:
    import fcntl

    key = str(output_dir.resolve())
    if key in _held_locks:
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    handle = open(output_dir / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ConfigError(
            f"--output_dir {output_dir} is in use by another run ({holder}); wait for it to finish, or "
            "pass another --output_dir."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    _held_locks[key] = handle


def where_the_work_is() -> Optional[str]:
    """After a failure: what of this run is safe on disk (a model saved by it, else its newest checkpoint), so the
    message can say that the training is not lost, and where it is."""
    for output_dir, started in _claimed.items():
        root = Path(output_dir)
        saved = [root / name for name in ("model.safetensors", "adapter_model.safetensors") if (root / name).is_file()]
        if any(f.stat().st_mtime >= started for f in saved):
            return f"the model this run trained is saved in {root} (complete: files are moved into place whole)"
        checkpoint = find_last_checkpoint(root)
        if checkpoint is not None:
            return f"the newest complete checkpoint is {checkpoint}; rerun the same command to resume from it"
    return None


def release_output_dirs() -> None:
    """Drop the locks this process holds (`hf_transfer.recipe.run_recipe` calls it when a recipe ends)."""
    while _held_locks:
        _, handle = _held_locks.popitem()
        handle.close()  # closing the file releases its flock
    _claimed.clear()


def _remove_staging_leftovers(output_dir: Path) -> None:
    for staging in [*output_dir.glob(".staging-*"), *output_dir.glob("*/.staging-*")]:
        if staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)
            logger.info("Removed %s, left by an interrupted run", staging)


def _differences(saved: dict, current: dict) -> list[str]:
    keys = sorted(set(saved) | set(current))
    return [f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in keys if saved.get(k) != current.get(k)]


def claim_output_dir(
    training_args: TrainingArguments, identity: dict[str, Any], *, resumes: bool = True
) -> Optional[str]:
    """Lock `--output_dir` for this run (main process), clean leftovers, and return the checkpoint to resume from:
    `--resume_from_checkpoint`, else the newest complete one in `--output_dir` (None without, or with
    `resumes=False`). A checkpoint written by a run of another identity is a `ConfigError` naming the differences.
    Every process calls it; only the main process locks and writes.
    """
    output_dir = Path(training_args.output_dir)
    _claimed.setdefault(str(output_dir), time.time())
    if training_args.should_save:
        _lock(output_dir)
        _remove_staging_leftovers(output_dir)
    checkpoint = training_args.resume_from_checkpoint or (find_last_checkpoint(output_dir) if resumes else None)
    if checkpoint is not None and resumes:
        identity_file = Path(checkpoint).parent / IDENTITY_FILE
        saved = json.loads(identity_file.read_text()) if identity_file.is_file() else None
        if saved is None:
            logger.warning(
                "Resuming from %s, which records no run identity (an older run): cannot check that it is the same run.",
                checkpoint,
            )
        elif saved != identity:
            changes = _differences(saved, identity)
            more = f" (and {len(changes) - 3} more)" if len(changes) > 3 else ""
            raise ConfigError(
                f"--output_dir {output_dir} holds checkpoints of another run ({checkpoint}): {'; '.join(changes[:3])}"
                f"{more}. Pass a new --output_dir, or delete its checkpoint-* folders to start this run there."
            )
    if training_args.should_save:
        write_json_atomic(output_dir / IDENTITY_FILE, identity)
    return checkpoint if resumes else None
