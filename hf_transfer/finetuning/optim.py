"""Parameter groups for fine-tuning: a separate learning rate for the new head, and layer-wise decay.

Layer-wise learning-rate decay (LLRD; Clark et al. 2020, ELECTRA, and BEiT) gives layer l of L the
rate `lr * decay ** (L + 1 - l)`: embeddings (l = 0) move least, the top block most, and the head
gets its own rate. Layer ids come from parameter names (`layer.3.`, `layers.3.`, `blocks.3.`, ...).
"""

from __future__ import annotations

import re
from typing import Iterable, Optional

from torch import nn

__all__ = ["layer_id_for_parameter", "create_param_groups"]

_LAYER_PATTERN = re.compile(r"(?:^|\.)(?:layer|layers|blocks|block|stages|h)\.(\d+)(?:\.|$)")
_EMBEDDING_HINTS = ("embeddings", "embed", "conv_stem", "bn1", "patch_embed", "cls_token", "pos_embed", "wte", "wpe")


def layer_id_for_parameter(name: str, num_layers: int) -> int:
    """0 for embeddings / stem, 1..num_layers for numbered blocks, num_layers + 1 for the rest (top norms)."""
    match = _LAYER_PATTERN.search(name)
    if match:
        return min(int(match.group(1)) + 1, num_layers)
    if any(hint in name.split(".") or f"{hint}." in name for hint in _EMBEDDING_HINTS):
        return 0
    return num_layers + 1


def _count_layers(names: Iterable[str]) -> int:
    ids = [int(m.group(1)) for n in names if (m := _LAYER_PATTERN.search(n))]
    return max(ids) + 1 if ids else 0


def create_param_groups(
    model: nn.Module,
    head_prefixes: tuple[str, ...],
    learning_rate: float,
    weight_decay: float,
    decay_parameter_names: set[str],
    head_learning_rate: Optional[float] = None,
    layer_decay: float = 1.0,
) -> list[dict]:
    """Optimizer groups keyed by (is head, layer id, decays): each with its own `lr` and `weight_decay`.

    A parameter belongs to the head when its name contains one of `head_prefixes` as a dotted
    component path (e.g. `classifier` or `timm_model.classifier`, also inside peft's wrappers), or is the prefix
    itself (a bare `nn.Parameter` such as a learnt `cls_token`).
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    num_layers = _count_layers(n for n, _ in named)
    head_lr = head_learning_rate if head_learning_rate is not None else learning_rate
    groups: dict[tuple, dict] = {}
    for name, param in named:
        is_head = any(f".{prefix}." in f".{name}." for prefix in head_prefixes)
        if is_head:
            lr, layer = head_lr, num_layers + 2
        else:
            layer = layer_id_for_parameter(name, num_layers)
            lr = learning_rate * layer_decay ** (num_layers + 1 - layer)
        decays = name in decay_parameter_names
        key = (is_head, layer, decays)
        if key not in groups:
            groups[key] = {"params": [], "lr": lr, "weight_decay": weight_decay if decays else 0.0, "names": []}
        groups[key]["params"].append(param)
        groups[key]["names"].append(name)
    return [groups[k] for k in sorted(groups)]
