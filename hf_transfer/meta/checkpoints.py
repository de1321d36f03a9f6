"""Checkpoints of the MAML outer loop: `checkpoint-N/` folders (N: meta-iterations done) that a run resumes from.

A checkpoint holds the wrapper's weights (`maml.safetensors`: what `load_best` restores at the end), the optimizer's
and the scheduler's state dicts (`optimizer.pt`, `scheduler.pt`, read back with `weights_only=True` as Trainer does)
and what `Accelerator.save_state` writes: every process's RNG states (python, numpy, torch, CUDA). `trainer_state.json` is written last, by the main process
once every process has written its part: `hf_transfer.outputs.find_last_checkpoint` takes a checkpoint only once that
file parses, so a killed run resumes from the last complete one.

What is not accelerate's, and why:
- the folder names. `ProjectConfiguration(automatic_checkpoint_naming=True)` writes `checkpoints/checkpoint_<i>`, `i`
  counting saves; the resume rules, `--resume_from_checkpoint` and `find_last_checkpoint` read transformers'
  `checkpoint-N`, as for every other recipe.
- the rotation. accelerate's `total_limit` deletes the oldest checkpoints, the best one among them; transformers'
  `rotate_checkpoints` spares it.
- the optimizer and the scheduler. Registered with `register_for_checkpointing`, accelerate would read them back
  as pickles (`weights_only=False`): a checkpoint folder could run code. Their state dicts load safely.
- `prepare`. A prepared scheduler steps once per process at every call, and a prepared model is wrapped in DDP and
  autocast; the outer loop all-reduces its own gradients and steps the scheduler once per meta-iteration.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional

import torch
from accelerate import Accelerator
from safetensors.torch import load_model, save_model
from torch import nn
from transformers.trainer_utils import rotate_checkpoints, sort_checkpoints

from ..errors import ConfigError
from ..outputs import publish_directory, write_json_atomic

__all__ = [
    "TRAINER_STATE_NAME",
    "WEIGHTS_NAME",
    "checkpoint_dir",
    "save_checkpoint",
    "load_checkpoint",
    "load_checkpoint_weights",
    "rotate_meta_checkpoints",
]

TRAINER_STATE_NAME = "trainer_state.json"
WEIGHTS_NAME = "maml.safetensors"


def checkpoint_dir(output_dir: str | os.PathLike, step: int) -> Path:
    return Path(output_dir) / f"checkpoint-{step}"


def save_checkpoint(
    accelerator: Accelerator,
    maml: nn.Module,
    output_dir: str | os.PathLike,
    step: int,
    state: dict,
    save_total_limit: Optional[int] = None,
    stateful: Mapping[str, Any] = {},
) -> Path:
    """Write `checkpoint-{step}`; every process calls it. Each writes its part through a staging folder of its own,
    then the main process writes `state` as `trainer_state.json` and rotates older checkpoints. `stateful`: the
    objects whose `state_dict` goes in as `<name>.pt` (the optimizer, the scheduler)."""
    path = checkpoint_dir(output_dir, step)

    def write(staging: str) -> None:
        if accelerator.is_main_process:
            save_model(maml, os.path.join(staging, WEIGHTS_NAME))
            for name, obj in stateful.items():
                torch.save(obj.state_dict(), os.path.join(staging, f"{name}.pt"))
        accelerator.save_state(staging)  # this process's RNG states

    publish_directory(path, write)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json_atomic(path / TRAINER_STATE_NAME, state)  # last: marks the checkpoint complete
        rotate_meta_checkpoints(output_dir, save_total_limit, state.get("best_step"))
    accelerator.wait_for_everyone()
    return path


def load_checkpoint(
    accelerator: Accelerator, maml: nn.Module, path: str | os.PathLike, stateful: Mapping[str, Any] = {}
) -> dict:
    """Restore the weights, the `stateful` objects (optimizer, scheduler) and this process's RNG states; returns the
    trainer state."""
    path = Path(path)
    if not any(path.glob("random_states_*.pkl")):
        raise ConfigError(
            f"{path} is a MAML checkpoint of an earlier hf_transfer (no accelerate RNG states); "
            "finish that run with the version that wrote it, or start this one in a new --output_dir."
        )
    load_checkpoint_weights(maml, path)
    for name, obj in stateful.items():
        obj.load_state_dict(torch.load(path / f"{name}.pt", map_location="cpu", weights_only=True))
    accelerator.load_state(str(path))
    return json.loads((path / TRAINER_STATE_NAME).read_text())


def load_checkpoint_weights(maml: nn.Module, path: str | os.PathLike) -> None:
    """Only the wrapper's weights of a checkpoint (copied into the parameters' devices)."""
    load_model(maml, os.path.join(path, WEIGHTS_NAME), device="cpu")


def rotate_meta_checkpoints(
    output_dir: str | os.PathLike, save_total_limit: Optional[int], best_step: Optional[int]
) -> None:
    """Keep the newest `save_total_limit` checkpoints and the best one. transformers' `rotate_checkpoints` counts the
    best within the limit, so it gets one more when the best is older than the newest `save_total_limit`."""
    if not save_total_limit:
        return
    best = str(checkpoint_dir(output_dir, best_step)) if best_step is not None else None
    newest = sort_checkpoints(str(output_dir))[-save_total_limit:]
    limit = save_total_limit + (best is not None and best not in newest)
    rotate_checkpoints(str(output_dir), limit, best_model_checkpoint=best)
