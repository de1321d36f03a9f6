"""Pooling token states into one embedding, and the pooling a sentence-embedding checkpoint was trained with.

A sentence-transformers checkpoint (all-MiniLM-L6-v2, BGE, E5, ...) says how its embedding is made in
`modules.json` and its Pooling module's `config.json`; mean pooling for MiniLM, the first token for BGE. Using
another pooling throws away what the checkpoint was trained for, so the backbone's default comes from there
(`read_sentence_transformers_pooling`), and `--pooling` overrides it.

Modes: `mean`, `cls` (first token), `max`, `mean_sqrt_len`, `weightedmean` (position-weighted, as
sentence-transformers), `lasttoken` (the last non-padding token, for decoder embedders), and `pooler` (the model's
own `pooler_output`, e.g. BERT's dense + tanh, or a vision backbone's globally pooled features).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Literal, Optional

import torch

__all__ = ["POOLING_MODES", "Pooling", "pool_tokens", "read_sentence_transformers_pooling"]

logger = logging.getLogger(__name__)

Pooling = Literal["mean", "cls", "max", "mean_sqrt_len", "weightedmean", "lasttoken", "pooler"]
POOLING_MODES: tuple[str, ...] = ("mean", "cls", "max", "mean_sqrt_len", "weightedmean", "lasttoken", "pooler")

# sentence-transformers' Pooling config keys, in its own order of precedence when several are set.
_ST_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
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
    """One vector per row from token states `hidden` (B, T, D) and `attention_mask` (B, T)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    if mode == "cls":  # the first attended token: position 0 under right padding
        return hidden[rows, attention_mask.long().argmax(1)]
    if mode in ("mean", "mean_sqrt_len"):
        total = (hidden * mask).sum(1)  # (B, D)
        count = mask.sum(1).clamp(min=1e-9)  # (B, 1)
        return total / (count if mode == "mean" else count.sqrt())
    if mode == "max":
        return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).max(1).values
    if mode == "weightedmean":
        weights = torch.arange(1, hidden.shape[1] + 1, device=hidden.device, dtype=hidden.dtype)
        weights = weights.view(1, -1, 1) * mask  # (B, T, 1)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    if mode == "lasttoken":
        positions = torch.arange(hidden.shape[1], device=hidden.device).expand_as(attention_mask)
        last = (positions * attention_mask.long()).argmax(1)  # (B,) the last attended position, either padding side
        return hidden[rows, last]
    raise ValueError(f"Unknown pooling {mode!r}; use one of {', '.join(POOLING_MODES)}.")
