"""Which parameters MAML's inner loop adapts (`MAMLConfig.adapt`), where the classification head is, and the
learning rates Meta-SGD learns for them.

`all` adapts every trainable parameter (MAML), `head` the final classification layer (ANIL), `lora` the peft LoRA
weights (names containing `lora_`, peft's prefix for adapter parameters), `lora_and_head` both. Whatever is adapted,
every trainable parameter is meta-trained by the outer loop.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..errors import ConfigError
from .arguments import MAMLConfig

__all__ = ["LORA_PREFIX", "resolve_head_name", "select_adapted_parameters", "create_inner_lrs", "zero_init_head"]

LORA_PREFIX = "lora_"


def resolve_head_name(model: nn.Module, head_module: Optional[str] = None) -> str:
    """The path in `model` of the final nn.Linear that outputs the logits: `head_module`, or found by
    `hf_transfer.models.get_classifier_name`.

    Raises:
        ConfigError: no such module, or it is not an nn.Linear.
    """
    from ..models import get_classifier_name

    try:
        head = model.get_submodule(head_module or get_classifier_name(model))
    except Exception as err:
        raise ConfigError(
            f"Cannot find the classification head of {type(model).__name__}"
            + (f" at --head_module {head_module!r}" if head_module else "")
            + f" ({err}). Pass --head_module with the module path of its final nn.Linear."
        ) from err
    if not isinstance(head, nn.Linear):
        raise ConfigError(
            f"--head_module {head_module!r} is a {type(head).__name__}, not the final nn.Linear; pass the path of "
            "the Linear layer that outputs the logits."
        )
    # The path relative to this model (peft wrappers forward attribute lookups to the base model).
    for full_name, module in model.named_modules():
        if module is head:
            return full_name
    raise ConfigError(f"The head {head_module!r} is not a submodule of {type(model).__name__}.")


def select_adapted_parameters(model: nn.Module, adapt: str, head_name: Optional[str]) -> tuple[str, ...]:
    """Names of the trainable parameters of `model` that `adapt` selects for the inner loop.

    Raises:
        ConfigError: `adapt` selects nothing (LoRA choices on a model without LoRA layers, a frozen head).
    """
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    head = {f"{head_name}.{n}" for n, _ in model.get_submodule(head_name).named_parameters()} if head_name else set()
    if adapt == "all":
        chosen = trainable
    elif adapt == "head":
        chosen = [n for n in trainable if n in head]
    elif adapt == "lora":
        chosen = [n for n in trainable if LORA_PREFIX in n]
    else:
        chosen = [n for n in trainable if LORA_PREFIX in n or n in head]
    if adapt in ("lora", "lora_and_head") and not any(LORA_PREFIX in n for n in chosen):
        raise ConfigError(
            f"--adapt {adapt} found no trainable LoRA parameter (names containing '{LORA_PREFIX}') in "
            f"{type(model).__name__}. Wrap the model with peft first "
            "(hf_transfer.finetuning.create_lora_model or peft.get_peft_model), or use --adapt all / head."
        )
    if not chosen:
        frozen = f" The head parameters {sorted(head)} are frozen (requires_grad=False)." if head else ""
        raise ConfigError(
            f"--adapt {adapt} selects no trainable parameter of {type(model).__name__}.{frozen} "
            "Unfreeze them or choose another --adapt."
        )
    return tuple(chosen)


def create_inner_lrs(model: nn.Module, adapted_names: tuple[str, ...], config: MAMLConfig) -> nn.ParameterList:
    """Meta-SGD's learned inner learning rates, one per adapted weight (`inner_lr_granularity="element"`) or per
    tensor, all starting at `inner_lr`, in the order of `adapted_names`."""
    per_element = config.inner_lr_granularity == "element"
    named = dict(model.named_parameters())
    return nn.ParameterList(
        nn.Parameter(
            torch.full(
                named[n].shape if per_element else (), config.inner_lr, dtype=named[n].dtype, device=named[n].device
            )
        )
        for n in adapted_names
    )


def zero_init_head(model: nn.Module, head_module: Optional[str] = None) -> nn.Linear:
    """Set the final classification layer to zero, so every episode starts with uniform predictions.

    With labels re-shuffled in every episode, a random head starts each task with arbitrary class
    preferences that the inner loop must first undo; a zero head does not (Triantafillou et al. 2020,
    "Meta-Dataset", sec. 3; Kao et al. 2022, "MAML is a noisy contrastive learner").
    """
    from ..models import get_classifier_name

    head = model.get_submodule(head_module or get_classifier_name(model))
    with torch.no_grad():
        head.weight.zero_()
        if head.bias is not None:
            head.bias.zero_()
    return head
