"""Building the cross-modal classifier from a text encoder, tuning its body (`BODY_TUNINGS`), and saving it.

`create_cross_modal_model` loads the text encoder's config, checks that its body can serve (a text encoder whose
`AutoModel` reads `inputs_embeds` of the needed length and lets the first token see every other, which a causal
decoder does not), builds `CrossModalForImageClassification` around it with new patch embedder, [CLS] vector and
classifier, and copies the pretrained weights into the body (`--body_init pretrained`) or leaves it at random init
(`--body_init random`, the control). The image processor is a stock `ViTImageProcessor` (resize, RGB, normalise).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn
from transformers import AutoModel, PreTrainedConfig, ViTImageProcessor

from ..errors import ConfigError
from ..finetuning.arguments import LoraArguments
from ..models import ModelArguments, infer_model_modality, load_config, resolve_model_path
from .arguments import CrossModalArguments
from .configuration_cross_modal import CrossModalConfig
from .modeling_cross_modal import CrossModalForImageClassification
from .tuning import BODY_INITS

__all__ = [
    "NEW_MODULES",
    "create_cross_modal_model",
    "create_image_processor",
    "freeze_body",
    "add_lora_to_body",
    "train_whole_body",
    "merge_body_adapters",
    "save_cross_modal_model",
]

logger = logging.getLogger(__name__)

# What the body did not bring: trained in every tuning, at --head_learning_rate.
NEW_MODULES = ("patch_embed", "cls_token", "classifier")
# Parts of a text encoder the image classifier never runs (BERT's pooler reads [CLS] for next-sentence prediction).
_UNUSED = ("pooler",)


def create_image_processor(args: CrossModalArguments) -> ViTImageProcessor:
    """Resize to `image_size`, convert to RGB (grey images too), scale to [0, 1] and normalise."""
    return ViTImageProcessor(
        size={"height": args.image_size, "width": args.image_size},
        do_convert_rgb=True,
        image_mean=[args.image_mean] * 3,
        image_std=[args.image_std] * 3,
    )


def _body_config(name_or_path: str, model_args: ModelArguments) -> tuple[str, PreTrainedConfig]:
    path = resolve_model_path(
        name_or_path, model_args.cache_dir, model_args.model_revision, model_args.token, model_args.trust_remote_code
    )
    config = load_config(path, model_args)
    modality = infer_model_modality(config)
    if modality != "text":
        raise ConfigError(
            f"--model_name_or_path {name_or_path!r} is a {modality} model; cross-modal fine-tuning needs a text "
            "encoder (minilm, a BERT, RoBERTa or DistilBERT checkpoint)."
        )
    if getattr(config, "is_encoder_decoder", False):
        raise ConfigError(
            f"--model_name_or_path {name_or_path!r} ({config.model_type}) is an encoder-decoder; cross-modal "
            "fine-tuning needs an encoder-only text model (minilm, BERT, RoBERTa, DistilBERT)."
        )
    return path, config


@torch.no_grad()
def _check_body(model: CrossModalForImageClassification, args: CrossModalArguments, name: str) -> None:
    """Run the model once on two images that differ in their last patch only: a body that cannot read the sequence
    stops here, and so does one whose first token (the [CLS] the classifier reads) does not see the last patch."""
    was_training = model.training
    model.eval()
    images = torch.zeros(2, model.config.num_channels, args.image_size, args.image_size)
    images[1, :, -args.patch_size :, -args.patch_size :] = 1.0
    try:
        logits = model(pixel_values=images).logits
    except (TypeError, ValueError, RuntimeError, IndexError) as err:
        raise ConfigError(
            f"--model_name_or_path {name!r} ({model.config.body_config.model_type}) cannot read {args.num_tokens} "
            f"tokens ({args.num_tokens - 1} patches and [CLS]) as inputs_embeds ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}). Use a larger --patch_size or a smaller --image_size, "
            "or a BERT-like encoder."
        ) from err
    finally:
        model.train(was_training)
    if torch.equal(logits[0], logits[1]):
        raise ConfigError(
            f"--model_name_or_path {name!r} ({model.config.body_config.model_type}) is a causal (left-to-right) "
            "model: its first token, which the classifier reads, sees no patch. Use an encoder (minilm, BERT, "
            "RoBERTa, DistilBERT)."
        )


def create_cross_modal_model(
    args: CrossModalArguments,
    label_names: Sequence[str],
    model_args: Optional[ModelArguments] = None,
) -> tuple[CrossModalForImageClassification, str]:
    """The classifier around the text encoder `model_args.model_name_or_path` (its body pretrained or at random
    init, as `args.body_init` says; the new parts at random init), and the path the encoder resolved to. The body is
    not yet prepared for training: `BODY_TUNINGS.get(args.body_tuning).prepare(model, lora_args)` does that."""
    model_args = model_args or ModelArguments()
    name = model_args.model_name_or_path
    path, body_config = _body_config(name, model_args)
    config = CrossModalConfig(
        body_config=body_config.to_dict(),
        image_size=args.image_size,
        patch_size=args.patch_size,
        classifier_dropout=args.classifier_dropout,
        id2label=dict(enumerate(label_names)),
        label2id={label: i for i, label in enumerate(label_names)},
    )
    model = CrossModalForImageClassification(config)
    if BODY_INITS.get(args.body_init).loads_weights:
        pretrained = AutoModel.from_pretrained(path, config=body_config, trust_remote_code=model_args.trust_remote_code)
        model.body.load_state_dict(pretrained.state_dict())
    _check_body(model, args, name)
    logger.info(
        "Cross-modal classifier: %s body (%s), %d patches of %dx%d, %d classes",
        body_config.model_type,
        args.body_init,
        args.num_tokens - 1,
        args.patch_size,
        args.patch_size,
        len(label_names),
    )
    return model, path


# ---- how the body is tuned (`BODY_TUNINGS`) ---------------------------------------------------------------------


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.LayerNorm) or any(k in type(module).__name__ for k in ("LayerNorm", "RMSNorm"))


def _train_new_parts(model: CrossModalForImageClassification) -> None:
    for name in NEW_MODULES:
        part = getattr(model, name)
        part.requires_grad_(True)
    # Never run (the pooler; the word embeddings, since patches come in as inputs_embeds): no gradient, which DDP
    # would wait for, and no optimizer state.
    model.body.get_input_embeddings().requires_grad_(False)
    for name, module in model.body.named_modules():
        if name.rsplit(".", 1)[-1] in _UNUSED:
            module.requires_grad_(False)


def _train_norms_and_positions(body: nn.Module) -> None:
    for name, module in body.named_modules():
        if _is_norm(module) or name.rsplit(".", 1)[-1] == "position_embeddings":
            module.requires_grad_(True)


def freeze_body(model: CrossModalForImageClassification, lora_args: Optional[LoraArguments] = None) -> None:
    """Lu et al.'s frozen pretrained transformer: of the body, only LayerNorms and position embeddings train."""
    model.body.requires_grad_(False)
    _train_norms_and_positions(model.body)
    _train_new_parts(model)


def train_whole_body(model: CrossModalForImageClassification, lora_args: Optional[LoraArguments] = None) -> None:
    model.body.requires_grad_(True)
    _train_new_parts(model)


def add_lora_to_body(model: CrossModalForImageClassification, lora_args: Optional[LoraArguments] = None) -> None:
    """`freeze_body`, plus LoRA adapters on the body's Linear layers (`resolve_lora_target_modules`)."""
    from ..finetuning.lora import add_lora_adapters

    model.body = add_lora_adapters(model.body, lora_args or LoraArguments(), skip=list(_UNUSED), what="the body")
    _train_norms_and_positions(model.body)
    _train_new_parts(model)


def merge_body_adapters(model: CrossModalForImageClassification) -> CrossModalForImageClassification:
    """LoRA adapters folded into the body's weights (a no-op without them): the plain model that is saved."""
    if hasattr(model.body, "merge_and_unload"):
        model.body = model.body.merge_and_unload()
    return model


def save_cross_modal_model(
    model: CrossModalForImageClassification, processor: ViTImageProcessor, directory: str | Path
) -> None:
    """The model (its code copied in, `auto_map` set) and its image processor: `AutoModelForImageClassification` and
    `pipeline("image-classification")` load them after `import hf_transfer.cross_modal`, or anywhere with
    `trust_remote_code=True`."""
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
