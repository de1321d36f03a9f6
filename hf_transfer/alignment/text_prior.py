"""The text prior of an image classifier: its head starts as the zero-shot classifier of an aligned dual encoder
(see `hf_transfer.alignment.head_init`)."""

from __future__ import annotations

import logging
from typing import Any, Sequence

import torch
from transformers import VisionTextDualEncoderModel, VisionTextDualEncoderProcessor

from ..errors import ConfigError
from ..models.heads import get_classifier
from .evaluation import class_text_embeddings

__all__ = ["text_prior_weights", "apply_text_prior"]

logger = logging.getLogger(__name__)


@torch.no_grad()
def text_prior_weights(dual_encoder: VisionTextDualEncoderModel, tokenizer: Any, names: Sequence[str], template: str):
    """(C, D) rows `s * T P_v`: class c's prompt embedding pulled back through the visual projection, so that
    `features @ W.T` ranks classes as the dual encoder's zero-shot classifier does."""
    texts = class_text_embeddings(dual_encoder, tokenizer, names, template)  # (C, P), unit rows
    return dual_encoder.logit_scale.exp() * texts @ dual_encoder.visual_projection.weight  # (C, P) @ (P, D)


@torch.no_grad()
def apply_text_prior(model: torch.nn.Module, pixel_values: torch.Tensor, label_names: Sequence[str], args: Any) -> None:
    """Set the final Linear of image classifier `model` to the text prior of `args.head_init_model` (bias 0).

    `pixel_values` (B, 3, H, W): a few training images, to check that the classifier reads the very features the dual
    encoder projects (its pooled output; ViT's classifier reads the CLS token instead, which is refused) and to scale
    the rows so the logits have the dual encoder's scale.
    """
    dual = VisionTextDualEncoderModel.from_pretrained(args.head_init_model).eval()
    tokenizer = VisionTextDualEncoderProcessor.from_pretrained(args.head_init_model).tokenizer
    classifier = get_classifier(model)
    features = []
    hook = classifier.register_forward_hook(lambda module, inputs, output: features.append(inputs[0]))
    was_training = model.training
    model.eval()
    try:
        model(pixel_values=pixel_values)
    finally:
        hook.remove()
        model.train(was_training)
    seen = features[0].reshape(len(pixel_values), -1)  # (B, D) what the classifier reads
    pooled = dual.vision_model(pixel_values=pixel_values).pooler_output  # (B, D) what the alignment projected
    if seen.shape != pooled.shape or not torch.allclose(seen, pooled, atol=1e-4, rtol=1e-3):
        raise ConfigError(
            f"--head_init text: the classifier of {type(model).__name__} does not read the pooled features the dual "
            f"encoder {args.head_init_model!r} aligned (pass --model_name_or_path {args.head_init_model}/vision_tower, "
            "and a tower whose classifier reads its pooled output: timm models, ConvNeXt, ResNet; ViT's reads the CLS "
            "token)."
        )
    weights = text_prior_weights(dual, tokenizer, label_names, args.template())  # (C, D)
    norm = dual.visual_projection(pooled).norm(dim=-1).mean()  # E|P_v h|: logits at the aligned scale
    classifier.weight.copy_(weights / norm)
    if classifier.bias is not None:
        classifier.bias.zero_()
    logger.info("Head initialised from the class names' text embeddings of %s", args.head_init_model)
