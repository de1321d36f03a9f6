"""The detector: a DETR-family model (`AutoModelForObjectDetection`) built on the user's pretrained classification
backbone, or an existing detection checkpoint with a new class head; and what each strategy stage trains.

The backbone is built at random inside the detector (transformers' `TimmBackbone` or `AutoBackbone`, so the saved
config rebuilds it offline) and its pretrained weights are then loaded from the local checkpoint: a timm model saved
for the Hub (the built-ins `efficientnet-lite0`, `mobilenet-v2`) or a transformers checkpoint with an `AutoBackbone`.
Every backbone weight must be found in the checkpoint; a missing one is an error, never a silent random layer.

Conditional DETR is the default (Meng et al. 2021): its conditional cross-attention lets each query look at a small
region, which makes DETR's training converge several times faster, and it reads one feature map (cheap at 64-128 px,
unlike Deformable DETR's multi-scale attention), with the same head, losses and processor as DETR.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn
from transformers import AutoConfig, AutoImageProcessor, AutoModelForObjectDetection, PreTrainedModel

from ..errors import ModelLoadError
from ..registry import get_builtin_model
from .arguments import DetectorArguments

__all__ = ["Detector", "create_detector", "backbone_module", "neck_module_names", "set_trainable"]

logger = logging.getLogger(__name__)

_IMAGENET_MEAN, _IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
_MAX_STRIDE = 16  # small images: read the deepest feature map of stride <= 16 (6x6 at 96 px, not 3x3)


@dataclass
class Detector:
    """The model to train, its processor, and where the backbone came from (for the card)."""

    model: PreTrainedModel
    processor: object
    backbone_source: str
    backbone_kind: str  # `timm`, `AutoBackbone`, or `detector` (an existing detection checkpoint)


def backbone_module(model: PreTrainedModel) -> nn.Module:
    """The backbone inside a DETR-family detector (what the strategies freeze or adapt)."""
    encoder = model.model.backbone  # DETR's conv encoder (older releases wrap it with the position embedding)
    return getattr(encoder, "conv_encoder", encoder).model


def neck_module_names(model: PreTrainedModel) -> list[str]:
    """Every top-level module that is not the backbone: the input projection, the transformer, the queries, the
    class and box heads."""
    backbone = backbone_module(model)
    inside = {id(m) for m in backbone.modules()}
    names = []
    for name, module in model.named_modules():
        if not name or id(module) in inside or any(name.startswith(n + ".") for n in names):
            continue
        if not any(id(m) in inside for m in module.modules()):
            names.append(name)
    return names


def set_trainable(model: nn.Module, stage: str) -> None:
    """`neck`: the backbone frozen, the rest trained; `all`: every weight."""
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    if stage == "neck":
        for parameter in backbone_module(model).parameters():
            parameter.requires_grad_(False)


def _resolve_folder(name: str) -> str:
    builtin = get_builtin_model(name)
    if builtin is not None:
        if builtin.modality != "vision":
            raise ModelLoadError(f"--backbone {name} is a {builtin.modality} model; give a vision backbone.")
        return builtin.resolve()
    return name


def _timm_config(folder: Path) -> Optional[dict]:
    """The config of a timm model saved for the Hub (it names an `architecture`), or None."""
    config = folder / "config.json"
    if not config.is_file():
        return None
    info = json.loads(config.read_text())
    return info if "architecture" in info else None


def _timm_out_index(architecture: str) -> int:
    import timm

    probe = timm.create_model(architecture, pretrained=False, features_only=True)
    reductions = probe.feature_info.reduction()
    return max(i for i, r in enumerate(reductions) if r <= _MAX_STRIDE)


def _read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(str(folder / "model.safetensors"))
    if (folder / "pytorch_model.bin").is_file():
        return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise ModelLoadError(f"{folder} has no model.safetensors or pytorch_model.bin to load the backbone from.")


def _load_backbone_weights(model: PreTrainedModel, weights: dict[str, torch.Tensor], source: str) -> None:
    """Copy `weights` into the detector's backbone; every backbone tensor must be among them."""
    backbone = backbone_module(model)
    own = {k for k in backbone.state_dict() if not k.endswith("num_batches_tracked")}
    weights = {k: v for k, v in weights.items() if k in own}
    missing = sorted(own - set(weights))
    if missing:
        raise ModelLoadError(
            f"The backbone checkpoint {source} lacks {len(missing)} of the detector backbone's {len(own)} tensors "
            f"(e.g. {missing[:3]}); is it the same architecture?"
        )
    backbone.load_state_dict(weights, strict=False)
    logger.info("Loaded %d pretrained backbone tensors from %s", len(weights), source)


def _last_feature_map(backbone: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    features = backbone(pixels)
    features = features.feature_maps if hasattr(features, "feature_maps") else features
    return features[-1]


@torch.no_grad()
def _check_same_features(backbone: nn.Module, reference: nn.Module, source: str) -> None:
    """The detector's backbone computes what the pretrained backbone computes (both in eval mode): DETR freezes its
    batch norms, and a norm it froze differently would silently change the pretrained function."""
    pixels = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    was_training = backbone.training
    backbone.eval()
    reference.eval()
    ours, theirs = _last_feature_map(backbone, pixels), _last_feature_map(reference, pixels)
    backbone.train(was_training)
    if ours.shape != theirs.shape or not torch.allclose(ours, theirs, atol=1e-4, rtol=1e-3):
        raise ModelLoadError(
            f"Inside the detector, the backbone {source} does not compute what it computes alone (largest difference "
            f"{(ours - theirs).abs().max():.3g}): DETR's frozen batch norm assumes eps 1e-5 and a separate activation. "
            "Use a timm model or a backbone with such batch norms (ResNet, ConvNeXt, Swin)."
        )


def _neck_config(args: DetectorArguments, label_names: list[str], backbone_config: dict):
    return AutoConfig.for_model(
        args.architecture,
        backbone_config=backbone_config,
        use_timm_backbone=False,
        num_queries=args.num_queries,
        auxiliary_loss=True,  # a loss on every decoder layer: DETR converges faster with it (Carion et al. 2020)
        d_model=args.d_model,
        encoder_layers=args.encoder_layers,
        decoder_layers=args.decoder_layers,
        encoder_attention_heads=args.attention_heads,
        decoder_attention_heads=args.attention_heads,
        encoder_ffn_dim=args.ffn_dim,
        decoder_ffn_dim=args.ffn_dim,
        id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
    )


# The image processor of each architecture (`--architecture`).
_PROCESSORS = {"conditional_detr": "ConditionalDetrImageProcessor", "detr": "DetrImageProcessor"}


def _processor(architecture: str, image_size: int, mean: list[float], std: list[float]):
    import transformers

    processor_class = getattr(transformers, _PROCESSORS[architecture])
    return processor_class(size={"height": image_size, "width": image_size}, image_mean=mean, image_std=std)


def create_detector(args: DetectorArguments, label_names: list[str], image_size: int) -> Detector:
    """The detector `args` asks for, with `label_names` as its classes (see the module docstring)."""
    if args.model_name_or_path is not None:
        return _from_detection_checkpoint(args, label_names, image_size)
    folder = Path(_resolve_folder(args.backbone))
    timm_info = _timm_config(folder)
    if timm_info is not None:
        architecture = timm_info["architecture"]
        backbone_config = {
            "model_type": "timm_backbone",
            "backbone": architecture,
            "features_only": True,
            "use_pretrained_backbone": False,
            "out_indices": [_timm_out_index(architecture)],
            # timm's own frozen norms, before DETR swaps every BatchNorm2d for one of its own: DETR's ignores a
            # norm's epsilon (EfficientNet's is 1e-3) and drops the activation timm fuses into BatchNormAct2d.
            "freeze_batch_norm_2d": True,
        }
        pretrained_cfg = timm_info.get("pretrained_cfg", {})
        mean, std = pretrained_cfg.get("mean", _IMAGENET_MEAN), pretrained_cfg.get("std", _IMAGENET_STD)
        kind = "timm"
    elif folder.is_dir() and (folder / "config.json").is_file():
        backbone_config = AutoConfig.from_pretrained(str(folder))
        if not hasattr(backbone_config, "stage_names"):
            raise ModelLoadError(
                f"--backbone {args.backbone} ({backbone_config.model_type}) has no AutoBackbone in transformers; "
                "give a timm model, a built-in, or a CNN / hierarchical transformer (ResNet, ConvNeXt, Swin, ...)."
            )
        backbone_config.out_indices = [len(backbone_config.stage_names) - 1]
        backbone_config.out_features = None
        try:
            processor = AutoImageProcessor.from_pretrained(str(folder))
            mean, std = list(processor.image_mean), list(processor.image_std)
        except (OSError, ValueError, AttributeError):
            mean, std = _IMAGENET_MEAN, _IMAGENET_STD
        kind = "AutoBackbone"
    else:
        raise ModelLoadError(
            f"--backbone {args.backbone!r} is not a built-in ({', '.join(_VISION_BUILTINS)}) nor a local folder with a "
            "config.json (a timm model saved for the Hub, or a transformers checkpoint)."
        )
    model = AutoModelForObjectDetection.from_config(_neck_config(args, label_names, backbone_config))
    if not args.random_init:
        if kind == "timm":
            import timm

            weights = _read_state_dict(folder)
            reference = timm.create_model(
                backbone_config["backbone"], features_only=True, out_indices=backbone_config["out_indices"]
            )
            reference.load_state_dict({k: v for k, v in weights.items() if k in reference.state_dict()})
        else:
            from transformers.models.auto.modeling_auto import MODEL_FOR_BACKBONE_MAPPING

            # The concrete class: AutoBackbone.from_pretrained asks the Hub whether a local path is a repository.
            backbone_class = MODEL_FOR_BACKBONE_MAPPING[type(backbone_config)]
            reference = backbone_class.from_pretrained(str(folder), out_indices=backbone_config.out_indices)
            weights = reference.state_dict()
        _load_backbone_weights(model, weights, args.backbone)
        _check_same_features(backbone_module(model), reference, args.backbone)
    return Detector(model, _processor(args.architecture, image_size, mean, std), args.backbone, kind)


_VISION_BUILTINS = ("efficientnet-lite0", "mobilenet-v2")


def _from_detection_checkpoint(args: DetectorArguments, label_names: list[str], image_size: int) -> Detector:
    """An existing detector with its class head replaced for `label_names` (box head, neck and backbone kept)."""
    try:
        model = AutoModelForObjectDetection.from_pretrained(
            args.model_name_or_path,
            id2label=dict(enumerate(label_names)),
            label2id={name: i for i, name in enumerate(label_names)},
            ignore_mismatched_sizes=True,
            cache_dir=args.cache_dir,
        )
        processor = AutoImageProcessor.from_pretrained(args.model_name_or_path, cache_dir=args.cache_dir)
    except (OSError, ValueError) as err:
        raise ModelLoadError(
            f"--model_name_or_path {args.model_name_or_path} is not a detection checkpoint "
            f"AutoModelForObjectDetection can load ({type(err).__name__}: {err})."
        ) from None
    processor.size = {"height": image_size, "width": image_size}
    return Detector(model, processor, args.model_name_or_path, "detector")
