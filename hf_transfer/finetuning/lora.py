"""LoRA through peft, with default target modules for text, ViT-like and timm backbones.

peft's built-in map (`TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING`) covers text models by
`model_type` but has no entry for vision models or timm wrappers; `resolve_lora_target_modules`
fills that gap by looking at the module names the backbone actually has.
"""

from __future__ import annotations

import logging

from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
from torch import nn
from transformers import PreTrainedModel

from ..backbones import get_classifier_name
from ..errors import ConfigError
from .config import TransferArguments

__all__ = ["resolve_lora_target_modules", "create_lora_model"]

logger = logging.getLogger(__name__)

# Attention projections by naming family, in order of preference: (names, families that use them).
_ATTENTION_TARGETS: tuple[tuple[str, ...], ...] = (
    ("query", "value"),  # BERT, ViT, DeiT, BEiT
    ("q_proj", "v_proj"),  # CLIP, most decoder LMs
    ("q_lin", "v_lin"),  # DistilBERT
    ("qkv",),  # timm ViTs, Swin
)
# Pointwise convolutions of timm CNNs (EfficientNet, MobileNet): expand and project.
_POINTWISE_CONV_TARGETS: tuple[str, ...] = ("conv_pw", "conv_pwl")


def _leaf_names(model: nn.Module, kinds: tuple[type, ...], skip_prefix: str) -> set[str]:
    return {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, kinds) and name and not name.startswith(skip_prefix)
    }


def resolve_lora_target_modules(model: PreTrainedModel) -> list[str]:
    """Module names to adapt by default for this architecture."""
    model_type = getattr(model.config, "model_type", None)
    if model_type in TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING:
        return list(TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING[model_type])
    head = get_classifier_name(model)
    linear_names = _leaf_names(model, (nn.Linear,), head)
    for names in _ATTENTION_TARGETS:
        if all(n in linear_names for n in names):
            return list(names)
    conv_names = _leaf_names(model, (nn.Conv2d,), head)
    pointwise = [n for n in _POINTWISE_CONV_TARGETS if n in conv_names]
    if pointwise:
        return pointwise
    raise ConfigError(
        f"No default LoRA target modules for {type(model).__name__} (model_type {model_type!r}); "
        "pass --lora_target_modules with names of its Linear or Conv2d layers."
    )


def create_lora_model(model: PreTrainedModel, args: TransferArguments) -> PeftModel:
    """Wrap `model` in LoRA adapters; the classification head is trained in full (`modules_to_save`)."""
    targets = args.lora_target_modules or resolve_lora_target_modules(model)
    head = get_classifier_name(model)
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in targets if t not in present and not any(n.endswith(t) for n, _ in model.named_modules())]
    if missing:
        raise ConfigError(
            f"--lora_target_modules {missing} match no module of {type(model).__name__}; "
            f"some of its layer names: {sorted(present)[:20]}."
        )
    config = LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=targets,
        modules_to_save=[head],
        bias="none",
    )
    logger.info("LoRA on %s (r=%d, alpha=%d), head %s trained in full", targets, args.lora_r, args.lora_alpha, head)
    return get_peft_model(model, config)
