"""A multi-label model's decision thresholds, kept on its config (`config.decision_thresholds`, label name ->
threshold) so they are saved and reloaded with it; `hf_transfer.recipe.saving` also writes them next to the weights
(`decision_thresholds.json`), where a peft adapter folder, which saves no config, keeps them too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from torch import nn

from ..metrics.multi_label import DecisionThresholds

__all__ = ["THRESHOLDS_FILE", "set_decision_thresholds", "decision_thresholds_of", "write_decision_thresholds"]

THRESHOLDS_FILE = "decision_thresholds.json"


def _config(model: nn.Module) -> Any:
    get_base = getattr(model, "get_base_model", None)  # a peft model: the wrapped transformers model's config
    return (get_base() if callable(get_base) else model).config


def _label_names(config: Any) -> list[str]:
    return [config.id2label[i] for i in range(len(config.id2label))]


def set_decision_thresholds(model: nn.Module, thresholds: DecisionThresholds) -> None:
    """Record `thresholds` on `model`'s config, by label name, with how they were chosen."""
    config = _config(model)
    saved = thresholds.to_dict(_label_names(config))
    config.decision_thresholds = saved["thresholds"]
    config.decision_thresholds_info = {k: v for k, v in saved.items() if k != "thresholds"}


def decision_thresholds_of(model: nn.Module) -> Optional[dict]:
    """What `set_decision_thresholds` recorded, as written to `decision_thresholds.json`, or None."""
    config = _config(model)
    thresholds = getattr(config, "decision_thresholds", None)
    if not thresholds:
        return None
    return {"thresholds": dict(thresholds), **dict(getattr(config, "decision_thresholds_info", None) or {})}


def write_decision_thresholds(model: nn.Module, directory: str | Path) -> None:
    """`decision_thresholds.json` in `directory` when `model` has thresholds; nothing otherwise."""
    saved = decision_thresholds_of(model)
    if saved is not None:
        Path(directory, THRESHOLDS_FILE).write_text(json.dumps(saved, indent=2) + "\n")
