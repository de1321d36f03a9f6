"""Pooling token states into one embedding, and the pooling a sentence-embedding checkpoint was trained with.

A sentence-transformers checkpoint (all-MiniLM-L6-v2, BGE, E5, ...) says how its embedding is made in
`modules.json` and its Pooling module's `config.json`; mean pooling for MiniLM, the first token for BGE. Using
another pooling throws away what the checkpoint was trained for, so the backbone's default comes from there
(`read_sentence_transformers_pooling`), and `--pooling` overrides it.

The modes are the entries of `hf_transfer.models.pooling_modes.POOLING_MODES`; each names its function here.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import torch

from .pooling_modes import POOLING_MODES

__all__ = [
    "POOLING_MODES",
    "Pooling",
    "pool_tokens",
    "read_sentence_transformers_pooling",
    "pool_mean",
    "pool_cls",
    "pool_max",
    "pool_mean_sqrt_len",
    "pool_weightedmean",
    "pool_lasttoken",
]

logger = logging.getLogger(__name__)

Pooling = str  # a name of `POOLING_MODES`

# sentence-transformers' Pooling config keys (a config that sets several concatenates modes: not read here).
_ST_POOLING_KEYS = {
    mode.sentence_transformers_key: mode.name
    for mode in POOLING_MODES.entries()
    if mode.sentence_transformers_key is not None
}


def read_sentence_transformers_pooling(path: str) -> Optional[str]:
    """The pooling mode of a local sentence-transformers folder (`modules.json` -> Pooling `config.json`), or None.

    None when the folder is no sentence-transformers model, or when its Pooling module concatenates several modes
    (the toolkit pools with one).
    """
    modules_file = Path(path) / "modules.json"
    if not modules_file.is_file():
        return None
    try:
        modules = json.loads(modules_file.read_text())
        entry = next(m for m in modules if str(m.get("type", "")).endswith(".Pooling"))
        config = json.loads((Path(path) / entry["path"] / "config.json").read_text())
    except (OSError, ValueError, StopIteration, KeyError) as err:
        logger.warning("Ignoring the sentence-transformers files in %s: %s", path, err)
        return None
    if config.get("pooling_mode"):  # newer configs name the mode directly
        mode = str(config["pooling_mode"]).replace("mean_tokens", "mean").replace("cls_token", "cls")
        return mode if mode in POOLING_MODES else None
    modes = [mode for key, mode in _ST_POOLING_KEYS.items() if config.get(key)]
    if len(modes) != 1:
        if modes:
            logger.warning("%s concatenates the poolings %s; pass --pooling to choose one.", path, modes)
        return None
    return modes[0]


def pool_tokens(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """One vector per row from token states `hidden` (B, T, D) and `attention_mask` (B, T), pooled as the
    `POOLING_MODES` entry `mode` says (`pooler` reads the model's output instead: it has no token function)."""
    entry = POOLING_MODES.get(mode)
    if entry.pool is None:
        raise ValueError(f"--pooling {mode} reads the model's pooler_output, not its token states.")
    return entry.pool(hidden, attention_mask)


def _mask(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    return attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)


def pool_cls(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The first attended token: position 0 under right padding."""
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, attention_mask.long().argmax(1)]  # (B, D)


def pool_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = _mask(hidden, attention_mask)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, D)


def pool_mean_sqrt_len(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = _mask(hidden, attention_mask)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9).sqrt()  # (B, D)


def pool_max(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = _mask(hidden, attention_mask)
    return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).max(1).values  # (B, D)


def pool_weightedmean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    weights = torch.arange(1, hidden.shape[1] + 1, device=hidden.device, dtype=hidden.dtype)
    weights = weights.view(1, -1, 1) * _mask(hidden, attention_mask)  # (B, T, 1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)  # (B, D)


def pool_lasttoken(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The last attended position, whichever side the padding is on."""
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    positions = torch.arange(hidden.shape[1], device=hidden.device).expand_as(attention_mask)
    return hidden[rows, (positions * attention_mask.long()).argmax(1)]  # (B, D)
