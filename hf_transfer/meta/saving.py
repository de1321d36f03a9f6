"""What a saved MAML folder holds besides the model: `maml_config.json` (the inner-loop settings and the adapted
parameter names) and, with Meta-SGD, the learned inner learning rates by parameter name (safetensors)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import ConfigError
from .arguments import MAMLConfig

if TYPE_CHECKING:
    from .model import MAML

__all__ = ["INNER_LRS_NAME", "MAML_CONFIG_NAME", "save_maml", "save_meta_state", "load_inner_lrs", "load_maml_config"]

INNER_LRS_NAME = "meta_sgd_inner_lrs.safetensors"
MAML_CONFIG_NAME = "maml_config.json"


def save_maml(maml: MAML, directory: str | os.PathLike, **kwargs: Any) -> None:
    """The model with its own `save_pretrained` (plain transformers / peft folder), plus `save_meta_state`."""
    os.makedirs(directory, exist_ok=True)
    save = getattr(maml.model, "save_pretrained", None)
    if callable(save):
        save(directory, **kwargs)
    else:
        torch.save(maml.model.state_dict(), os.path.join(directory, "pytorch_model.bin"))
    save_meta_state(maml, directory)


def save_meta_state(maml: MAML, directory: str | os.PathLike) -> None:
    """What MAML adds to a saved model: its config with the adapted parameter names and, with Meta-SGD, the
    learned inner learning rates by parameter name (for models saved in another format than `save_pretrained`'s)."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, MAML_CONFIG_NAME), "w") as f:
        json.dump({**asdict(maml.config), "adapted_parameters": list(maml.adapted_names)}, f, indent=2)
    if maml.inner_lrs is not None:
        save_file(
            {n: lr.detach().contiguous().cpu() for n, lr in maml.named_inner_lrs().items()},
            os.path.join(directory, INNER_LRS_NAME),
        )


def load_maml_config(directory: str | os.PathLike) -> MAMLConfig:
    """The `MAMLConfig` a folder was saved with (`save_meta_state`)."""
    with open(os.path.join(directory, MAML_CONFIG_NAME)) as f:
        saved = json.load(f)
    saved.pop("adapted_parameters", None)
    return MAMLConfig(**saved)


def load_inner_lrs(maml: MAML, directory: str | os.PathLike) -> None:
    """Read learned inner learning rates written by `save_meta_state` (Meta-SGD) into `maml`."""
    if maml.inner_lrs is None:
        raise ConfigError("This MAML has no learned inner learning rates; create it with learn_inner_lr=True.")
    saved = load_file(os.path.join(directory, INNER_LRS_NAME))
    with torch.no_grad():
        for name, lr in maml.named_inner_lrs().items():
            lr.copy_(saved[name])
