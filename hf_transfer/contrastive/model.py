"""`ContrastiveModel`: a backbone, the projection head used only while pretraining, and the loss.

SimCLR found that the loss is best applied after a small MLP g(.) on top of the representation h, and
that h (not g(h)) transfers best; the head is therefore trained and then dropped: `save_backbone` writes
the backbone alone. The loss lives in the model as a submodule so that its parameters (a learnable
temperature) are optimised, synchronised by DDP and checkpointed with everything else.

Pooled-embedding parameters that the chosen pooling never reads (BERT's pooler under mean pooling) are
frozen: they would get no gradient, which DDP without `find_unused_parameters` rejects.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from ..errors import ConfigError
from ..modalities import MODALITIES
from ..models import Backbone, ModelArguments, infer_model_modality, load_processor, resolve_model_path
from ..models.pooling_modes import POOLING_MODES
from .export import save_backbone

__all__ = [
    "ProjectionHead",
    "ContrastiveModel",
    "create_backbone_from_config",
    "default_image_processor",
    "tokenizer_from_source",
]

logger = logging.getLogger(__name__)


class ProjectionHead(nn.Module):
    """SimCLR's projection g: Linear -> ReLU -> Linear (no batch norm, so GradCache stays exact).

    Args:
        input_dim: the backbone's embedding size.
        output_dim: size of the space the loss compares in (SimCLR: 128).
        hidden_dim: hidden size; default `input_dim`.
    """

    def __init__(self, input_dim: int, output_dim: int = 128, hidden_dim: Optional[int] = None):
        super().__init__()
        hidden_dim = hidden_dim or input_dim
        self.net = nn.Sequential(nn.Linear(input_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, output_dim))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.net(embeddings)  # (B, input_dim) -> (B, output_dim)


class ContrastiveModel(nn.Module):
    """Backbone + projection head (+ loss) for contrastive pretraining; `forward` returns projected embeddings.

    Args:
        backbone: a `Backbone` (`create_backbone`), pooled as it will be used downstream.
        projection_dim: output size of the projection head; 0 for none (the loss sees the pooled embedding).
        projection_hidden_dim: hidden size of the head (default: the embedding size).
        loss: the contrastive loss module (`NTXentLoss`, ...); `ContrastiveTrainer(loss=...)` sets it too.

    Example:
        >>> backbone = create_backbone("minilm")
        >>> model = ContrastiveModel(backbone, projection_dim=128, loss=NTXentLoss(temperature=0.05))
        >>> batch = backbone.processor(["a", "b"], padding=True, return_tensors="pt")
        >>> model(**batch).shape
        torch.Size([2, 128])
        >>> model.save_backbone("pretrained-minilm")  # AutoModel / SentenceTransformer folder
    """

    # Tell `Trainer` that `forward` takes no loss kwargs (it would otherwise read them from `**inputs`).
    accepts_loss_kwargs = False

    def __init__(
        self,
        backbone: Backbone,
        projection_dim: int = 128,
        projection_hidden_dim: Optional[int] = None,
        loss: Optional[nn.Module] = None,
    ):
        super().__init__()
        self.backbone = backbone
        self.projection = (
            ProjectionHead(backbone.embedding_dim, projection_dim, projection_hidden_dim)
            if projection_dim
            else nn.Identity()
        )
        self.loss = loss
        self._freeze_unused_pooler()

    def _freeze_unused_pooler(self) -> None:
        pooler = getattr(self.backbone.model, "pooler", None)
        pools_tokens = MODALITIES.get(self.backbone.modality).pools_tokens
        reads_pooler = POOLING_MODES.get(self.backbone.pooling).reads_pooler_output
        if pools_tokens and not reads_pooler and isinstance(pooler, nn.Module):
            pooler.requires_grad_(False)
            logger.info(
                "Freezing %s.pooler: %s pooling never reads it.",
                type(self.backbone.model).__name__,
                self.backbone.pooling,
            )

    @property
    def modality(self) -> str:
        return self.backbone.modality

    def embed(self, **inputs: torch.Tensor) -> torch.Tensor:
        """The backbone's pooled embedding (B, D): what is transferred."""
        return self.backbone.embed(**inputs)

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        """Projected embeddings (B, projection_dim), the space the loss compares in."""
        return self.projection(self.backbone.embed(**inputs))

    def save_backbone(
        self, output_dir: str | Path, max_seq_length: int = 128, sentence_transformers: bool = True
    ) -> Path:
        """Write the backbone without head and loss (see `hf_transfer.contrastive.export.save_backbone`)."""
        return save_backbone(
            self.backbone, output_dir, max_seq_length=max_seq_length, sentence_transformers=sentence_transformers
        )


def _default_image_processor(model_type: str):
    import transformers
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES

    names = IMAGE_PROCESSOR_MAPPING_NAMES.get(model_type)
    if isinstance(names, dict):
        names = [names.get("torchvision"), names.get("pil")]
    elif isinstance(names, str):
        names = [names]
    for name in names or []:
        if name and hasattr(transformers, name):
            return getattr(transformers, name)()
    raise ConfigError(
        f"transformers has no default image processor for model type {model_type!r}; load a saved model with "
        "--model_name_or_path instead of --model_type."
    )


def default_image_processor(
    model_type: str, config: Any, tokenizer_source: Optional[str] = None, model_args: Optional[ModelArguments] = None
) -> Any:
    """transformers' default image processor of `model_type`, resizing to the config's `image_size`: an image
    backbone from scratch has no saved processor (`tokenizer_source` and `model_args` do not apply)."""
    processor = _default_image_processor(model_type)
    size = getattr(config, "image_size", None)
    if size:
        processor.size = {"height": int(size), "width": int(size)}
    return processor


def tokenizer_from_source(
    model_type: str, config: Any, tokenizer_source: Optional[str], model_args: Optional[ModelArguments] = None
) -> Any:
    """The tokenizer of `tokenizer_source` (`--model_name_or_path`): a text model from scratch has a vocabulary only
    through an existing tokenizer."""
    if tokenizer_source is None:
        raise ConfigError(f"A {model_type} text model from scratch needs a tokenizer: pass --model_name_or_path.")
    model_args = model_args or ModelArguments(model_name_or_path=tokenizer_source)
    path = resolve_model_path(tokenizer_source, model_args.cache_dir, model_args.model_revision, model_args.token)
    return load_processor(path, "text", model_args)


def create_backbone_from_config(
    model_type: str,
    config_overrides: Optional[str] = None,
    pooling: Optional[str] = None,
    tokenizer_source: Optional[str] = None,
    model_args: Optional[ModelArguments] = None,
) -> Backbone:
    """A randomly initialised backbone (pretraining from scratch), like transformers' `run_mlm.py --model_type`.

    The model gets no pooling layer where its class allows (`add_pooling_layer=False`), so the CLS token,
    which `AutoModelFor...Classification` heads of ViT-like models read, is what pretraining shapes.
    """
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.for_model(model_type)
    if config_overrides:
        try:
            config.update_from_string(config_overrides)
        except ValueError as err:
            raise ConfigError(
                f"--config_overrides {config_overrides!r} does not fit {model_type}'s config: {err}"
            ) from err
    modality = infer_model_modality(config)
    try:
        model = AutoModel.from_config(config, add_pooling_layer=False)
    except TypeError:
        model = AutoModel.from_config(config)
    entry = MODALITIES.get(modality)
    processor = entry.processor_from_config(model_type, config, tokenizer_source, model_args)
    logger.info(
        "Built a randomly initialised %s backbone (%s parameters)",
        model_type,
        f"{sum(p.numel() for p in model.parameters()):,}",
    )
    return Backbone(model, processor, modality, pooling or entry.default_pooling)
