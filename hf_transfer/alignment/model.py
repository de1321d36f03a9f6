"""The dual encoder: an image tower and a text tower from any two checkpoints, joined as transformers'
`VisionTextDualEncoderModel` (so the output is a stock class that `pipeline("zero-shot-image-classification")` runs),
and `AlignmentModel`, what trains it: the dual encoder plus the toolkit's in-batch contrastive loss.

Two things stand between an arbitrary pair of backbones and a dual encoder that reloads without this package:

- `VisionTextDualEncoderModel` sizes its visual projection from `vision_config.hidden_size`, which CNN and timm
  configs lack (timm's width is `num_features`). The width of the tower's `pooler_output` is measured on a blank
  image and written into the tower's config as `hidden_size`, so it is saved with it.
- timm's image processor (`TimmWrapperImageProcessor`) is read from the model's own `config.json`, which a dual
  encoder nests; its preprocessing (resize, centre crop, mean and std) is written as the equivalent stock
  `CLIPImageProcessor` instead, used for training and saved in `VisionTextDualEncoderProcessor`.
"""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path
from typing import Any, Optional

import torch
from PIL import Image
from torch import nn
from transformers import (
    AutoModel,
    CLIPImageProcessor,
    VisionTextDualEncoderConfig,
    VisionTextDualEncoderModel,
    VisionTextDualEncoderProcessor,
)

from ..errors import ConfigError
from ..finetuning.arguments import LoraArguments
from ..modalities import MODALITIES
from ..models import ModelArguments, infer_model_modality, load_config, load_processor, resolve_model_path
from ..processing import set_image_size
from .arguments import AlignmentArguments
from .tuning import VISION_TUNINGS

__all__ = [
    "AlignmentModel",
    "create_dual_encoder",
    "stock_image_processor",
    "freeze_tower",
    "add_lora_to_tower",
    "train_whole_tower",
    "save_dual_encoder",
    "VISION_TOWER_SUBDIR",
]

logger = logging.getLogger(__name__)

_PIL_RESAMPLING = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


def stock_image_processor(processor: Any) -> Any:
    """A timm processor as the `CLIPImageProcessor` doing the same (timm's eval transform: resize the short side to
    `size / crop_pct`, centre-crop `size`, normalise); any other processor unchanged."""
    data_config = getattr(processor, "data_config", None)
    if data_config is None:
        return processor
    _, height, width = data_config["input_size"]
    crop_pct = data_config.get("crop_pct") or 1.0
    scale = math.floor(min(height, width) / crop_pct)
    return CLIPImageProcessor(
        size={"shortest_edge": scale},
        crop_size={"height": height, "width": width},
        resample=_PIL_RESAMPLING.get(data_config.get("interpolation"), Image.BICUBIC),
        image_mean=list(data_config["mean"]),
        image_std=list(data_config["std"]),
    )


def _load_tower(name_or_path: str, modality: str, model_args: ModelArguments) -> tuple[nn.Module, Any]:
    path = resolve_model_path(
        name_or_path, model_args.cache_dir, model_args.model_revision, model_args.token, model_args.trust_remote_code
    )
    config = load_config(path, model_args)
    found = infer_model_modality(config)
    if found != modality:
        flag = "--vision_model_name_or_path" if modality == "vision" else "--text_model_name_or_path"
        example = MODALITIES.get(modality).example_models
        raise ConfigError(f"{flag} {name_or_path!r} is a {found} model; it needs a {modality} model (e.g. {example}).")
    model = AutoModel.from_pretrained(path, config=config, trust_remote_code=model_args.trust_remote_code)
    return model, load_processor(path, modality, model_args)


@torch.no_grad()
def _pooled_width(model: nn.Module, inputs: dict[str, torch.Tensor], flag: str, name: str) -> int:
    was_training = model.training
    model.eval()
    pooled = getattr(model(**inputs, return_dict=True), "pooler_output", None)
    model.train(was_training)
    if pooled is None or pooled.ndim != 2:
        raise ConfigError(
            f"{flag} {name!r} ({type(model).__name__}) gives no pooled output (pooler_output), which "
            "VisionTextDualEncoderModel projects; choose a tower that has one (BERT, RoBERTa, MiniLM; ViT, ConvNeXt, "
            "timm models)."
        )
    return int(pooled.shape[-1])


def create_dual_encoder(
    args: AlignmentArguments, model_args: Optional[ModelArguments] = None
) -> tuple[VisionTextDualEncoderModel, VisionTextDualEncoderProcessor]:
    """The two pretrained towers joined by new projections (`args.projection_dim`), and the processor of both.

    `model_args` gives the loading options (cache, revision, token, remote code) of both towers.
    """
    model_args = model_args or ModelArguments()
    vision, image_processor = _load_tower(args.vision_model_name_or_path, "vision", model_args)
    text, tokenizer = _load_tower(args.text_model_name_or_path, "text", model_args)
    if args.image_size:
        image_processor = set_image_size(image_processor, vision, args.image_size)
    image_processor = stock_image_processor(image_processor)
    blank = image_processor(Image.new("RGB", (64, 64)), return_tensors="pt")
    width = _pooled_width(vision, dict(blank), "--vision_model_name_or_path", args.vision_model_name_or_path)
    if getattr(vision.config, "hidden_size", width) != width:
        raise ConfigError(
            f"--vision_model_name_or_path {args.vision_model_name_or_path!r}: its config's hidden_size "
            f"({vision.config.hidden_size}) is not the width of its pooled output ({width}), so a dual encoder "
            "cannot project it; choose another image tower."
        )
    vision.config.hidden_size = width  # what VisionTextDualEncoderModel reads (timm and CNN configs lack it)
    _pooled_width(
        text,
        dict(tokenizer(["a caption"], return_tensors="pt")),
        "--text_model_name_or_path",
        args.text_model_name_or_path,
    )
    config = VisionTextDualEncoderConfig.from_vision_text_configs(
        vision.config,
        text.config,
        projection_dim=args.projection_dim,
        logit_scale_init_value=math.log(1.0 / args.temperature),
    )
    model = VisionTextDualEncoderModel(config=config, vision_model=vision, text_model=text)
    processor = VisionTextDualEncoderProcessor(image_processor=image_processor, tokenizer=tokenizer)
    logger.info(
        "Dual encoder: %s (%d-d) + %s (%d-d) -> %d-d",
        type(vision).__name__,
        width,
        type(text).__name__,
        config.text_config.hidden_size,
        args.projection_dim,
    )
    return model, processor


# ---- how the image tower is tuned (`VISION_TUNINGS`) -------------------------------------------------------------


def freeze_tower(tower: nn.Module, lora_args: Optional[LoraArguments] = None) -> nn.Module:
    """LiT: no weight of the tower is trained."""
    return tower.requires_grad_(False)


def train_whole_tower(tower: nn.Module, lora_args: Optional[LoraArguments] = None) -> nn.Module:
    return tower.requires_grad_(True)


def add_lora_to_tower(tower: nn.Module, lora_args: Optional[LoraArguments] = None) -> nn.Module:
    """LoRA adapters on the tower's default targets (`resolve_lora_target_modules`; the tower has no head)."""
    from ..finetuning.lora import add_lora_adapters

    return add_lora_adapters(tower, lora_args or LoraArguments(), what="the image tower")


# ---- training and saving -----------------------------------------------------------------------------------------


class AlignmentModel(nn.Module):
    """The dual encoder being aligned, with the loss (its learnable temperature trains with the model).

    `forward` returns the projected (image, text) embeddings of a batch of pairs; the loss compares them. A tower
    whose tuning `keeps_eval_mode` (LiT's frozen tower) stays in eval mode whatever `train()` asks.

    Args:
        dual_encoder: a `VisionTextDualEncoderModel` (`create_dual_encoder`).
        vision_tuning: a name of `VISION_TUNINGS`.
        loss: the contrastive loss (`InBatchNegativesLoss(symmetric=True)`: image->text and text->image).
        lora_args: the adapters' settings with `vision_tuning="lora"`.
    """

    accepts_loss_kwargs = False

    def __init__(
        self,
        dual_encoder: VisionTextDualEncoderModel,
        vision_tuning: str,
        loss: nn.Module,
        lora_args: Optional[LoraArguments] = None,
    ):
        super().__init__()
        self.tuning = VISION_TUNINGS.get(vision_tuning)
        dual_encoder.vision_model = self.tuning.prepare(dual_encoder.vision_model, lora_args)
        dual_encoder.logit_scale.requires_grad_(False)  # the loss's temperature is the one trained
        self.dual_encoder = dual_encoder
        self.loss = loss
        self.train(False)

    def train(self, mode: bool = True) -> AlignmentModel:
        super().train(mode)
        if self.tuning.keeps_eval_mode:
            self.dual_encoder.vision_model.eval()
        return self

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, **text_inputs: torch.Tensor):
        outputs = self.dual_encoder(pixel_values=pixel_values, input_ids=input_ids, return_dict=True, **text_inputs)
        return outputs.image_embeds, outputs.text_embeds  # (B, P) each, L2-normalised

    def stock_model(self) -> VisionTextDualEncoderModel:
        """A copy as a plain `VisionTextDualEncoderModel`: LoRA folded into the tower, the learnt temperature as its
        `logit_scale`."""
        model = copy.deepcopy(self.dual_encoder)
        if VISION_TUNINGS.get(self.tuning.name).uses_lora:
            model.vision_model = model.vision_model.merge_and_unload()
        scale = self.loss.temperature.scale()
        scale = float(scale.detach()) if isinstance(scale, torch.Tensor) else float(scale)
        with torch.no_grad():
            model.logit_scale.fill_(math.log(scale))
        return model.eval()


VISION_TOWER_SUBDIR = "vision_tower"


def save_dual_encoder(model: AlignmentModel, processor: Any, directory: str | Path) -> None:
    """The aligned model as a stock `VisionTextDualEncoderModel` and its `VisionTextDualEncoderProcessor`: they load
    with `from_pretrained` and `pipeline("zero-shot-image-classification", model=directory)` alone. The image tower
    is also written alone in `vision_tower/` (`AutoModel` + image processor), the backbone that
    `recipes/finetune.py --head_init text` fine-tunes."""
    stock = model.stock_model()
    stock.save_pretrained(directory)
    processor.save_pretrained(directory)
    tower = stock.vision_model
    tower.config = copy.deepcopy(tower.config)
    if tower.config.model_type == "timm_wrapper":  # headless: the pretrained class count no longer applies
        tower.config.id2label, tower.config.num_classes, tower.config.label_names = {}, 0, []
    tower.save_pretrained(Path(directory) / VISION_TOWER_SUBDIR)
    processor.image_processor.save_pretrained(Path(directory) / VISION_TOWER_SUBDIR)
