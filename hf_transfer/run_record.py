"""The record of what a run did (`<output_dir>/transfer_run.json`), written by every recipe at its end.

The model card (`hf_transfer.model_card`) is rendered from this file, `all_results.json` and
`trainer_state.json` alone, so a card can be rebuilt and pushed long after the run.
"""

from __future__ import annotations

import dataclasses
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from .outputs import write_json_atomic
from .registry import get_builtin_model

__all__ = ["RUN_INFO_FILE", "RunRecord", "non_default_arguments", "looks_like_hub_id"]

RUN_INFO_FILE = "transfer_run.json"

_NOT_HYPERPARAMETERS = (
    "output_dir",
    "logging_dir",
    "report_to",
    "hub_model_id",
    "push_to_hub",
    "hub_private_repo",
    "cache_dir",
    "feature_cache_dir",
    "label_names",
    "remove_unused_columns",
)


def _fresh_instance(obj: Any) -> Any:
    """A default instance of `obj`'s class (TrainingArguments needs its output_dir), or None."""
    try:
        return type(obj)(output_dir=obj.output_dir) if hasattr(obj, "output_dir") else type(obj)()
    except Exception:  # e.g. a dataclass whose defaults alone fail validation
        return None


def non_default_arguments(*argument_objects: Any) -> dict[str, Any]:
    """Fields that differ from a fresh instance of their class, without secrets or local paths.

    Comparing with a fresh instance (not the field defaults) hides values that `__post_init__`
    derives, as sentence-transformers' model cards do.
    """
    changed: dict[str, Any] = {}
    for obj in argument_objects:
        if obj is None or not dataclasses.is_dataclass(obj):
            continue
        fresh = _fresh_instance(obj)
        for f in dataclasses.fields(obj):
            if not f.init or f.name.startswith("_") or f.name in _NOT_HYPERPARAMETERS or "token" in f.name:
                continue
            value = getattr(obj, f.name)
            if fresh is not None:
                default = getattr(fresh, f.name, dataclasses.MISSING)
            elif f.default is not dataclasses.MISSING:
                default = f.default
            else:
                default = dataclasses.MISSING
            if value != default and _is_plain(value):
                changed[f.name] = (
                    value.value if hasattr(value, "value") and not isinstance(value, (int, float)) else value
                )
    return changed


def _is_plain(value: Any) -> bool:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    return hasattr(value, "value")  # enums


def _hardware(world_size: int) -> str:
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    else:
        device = f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    return f"{world_size} process(es) on {device}"


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for package in ("hf-transfer-toolkit", "transformers", "peft", "datasets", "accelerate", "torch", "timm"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return versions


def looks_like_hub_id(name: str) -> bool:
    return name.count("/") == 1 and not os.path.exists(name) and not name.startswith((".", "/"))


@dataclass
class RunRecord:
    """What ran: the recipe, its base model and data, the method, and how the output folder is saved.

    Args:
        recipe: the recipe's name (`finetune`, `domain_adapt`, `maml`, `contrastive_pretrain`).
        base_model: `--model_name_or_path` as given (a built-in alias, a folder or a Hub id).
        base_model_path: the folder it resolved to.
        modality: `text` or `vision`.
        method: the strategy or method, as the card shows it (e.g. `lora`, `dann (full)`).
        datasets: the data the run read (built-in names, Hub ids or file paths).
        label_names: the classes of the saved head (the target's name for regression; empty for a backbone).
        arguments: the argument dataclasses of the run; the card lists the values that differ from the defaults.
        world_size: how many processes trained.
        task: `single_label` or `regression` (`hf_transfer.constants.TASKS`).
        sentence_transformers: the folder is a sentence-transformers model (a pooled classifier or backbone).
        pooling: its pooling, when it has one.
        saved_as: `backbone` for a pretrained backbone without a head (contrastive pretraining).
        domains: `{"source": ..., "target": ...}` of a domain-adaptation run.
        loss: the contrastive loss (`name`, `config`, `citation`).
    """

    recipe: str
    base_model: str
    base_model_path: str
    modality: str
    method: str
    datasets: list[str]
    label_names: list[str]
    arguments: tuple = ()
    world_size: int = 1
    task: str = "single_label"
    sentence_transformers: bool = False
    pooling: Optional[str] = None
    saved_as: Optional[str] = None
    domains: Optional[dict[str, str]] = None
    loss: Optional[dict[str, Any]] = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        """The JSON the model card reads: hyperparameters, hardware and versions resolved, unset extras left out."""
        builtin = get_builtin_model(self.base_model)
        info = {
            "recipe": self.recipe,
            "base_model": self.base_model,
            "base_model_hub_id": builtin.hub_id
            if builtin is not None
            else (self.base_model if looks_like_hub_id(self.base_model) else None),
            "base_model_path": self.base_model_path,
            "modality": self.modality,
            "method": self.method,
            "task": self.task,
            "datasets": list(self.datasets),
            "label_names": list(self.label_names),
            "hyperparameters": non_default_arguments(*self.arguments),
            "hardware": _hardware(self.world_size),
            "versions": _versions(),
        }
        extras = {
            "sentence_transformers": self.sentence_transformers,
            "pooling": self.pooling,
            "saved_as": self.saved_as,
            "domains": self.domains,
            "loss": self.loss,
        }
        info.update({key: value for key, value in extras.items() if value})
        return info

    def save(self, output_dir: str | os.PathLike) -> Path:
        """Write `output_dir/transfer_run.json` (main process, after training)."""
        return write_json_atomic(Path(output_dir) / RUN_INFO_FILE, self.to_dict())

    def merged(self) -> RunRecord:
        """The record of the `merged/` folder a LoRA run also writes (`--merge_lora`)."""
        return dataclasses.replace(self, method=f"{self.method} (LoRA merged)")
