"""`Backbone`: an `AutoModel` and its processor with one pooled embedding per input, text or vision; what
contrastive pretraining trains and linear evaluation reads."""

from __future__ import annotations

import logging
from typing import Any, Optional

import torch
from torch import nn
from transformers import AutoModel, PretrainedConfig, PreTrainedModel

from ..modalities import MODALITIES
from .arguments import ModelArguments
from .loading import Modality, infer_model_modality, load_config, load_processor, readable_weights, resolve_model_path
from .pooling import Pooling, pool_tokens, read_sentence_transformers_pooling
from .pooling_modes import POOLING_MODES

__all__ = ["Backbone", "create_backbone"]

logger = logging.getLogger(__name__)


class Backbone(nn.Module):
    """An `AutoModel` plus its processor, with one pooled embedding per input for text and vision.

    Pooling (`hf_transfer.models.pooling`): `mean` (text: mean over the attention mask), `cls` (first token), `max`,
    `mean_sqrt_len`, `weightedmean`, `lasttoken`, `pooler` (the model's
    own `pooler_output`; vision backbones such as timm's give their globally pooled features).

    Example:
        >>> backbone = create_backbone("minilm")
        >>> batch = backbone.processor(["a sentence"], return_tensors="pt")
        >>> backbone.embed(**batch).shape
        torch.Size([1, 384])
    """

    def __init__(self, model: PreTrainedModel, processor: Any, modality: Modality, pooling: Pooling):
        super().__init__()
        self.model = model
        self.processor = processor
        self.modality = modality
        self.pooling = pooling

    @property
    def config(self) -> PretrainedConfig:
        return self.model.config

    @property
    def embedding_dim(self) -> int:
        config = self.model.config
        for attr in ("hidden_size", "num_features"):
            if getattr(config, attr, None):
                return int(getattr(config, attr))
        timm_model = getattr(self.model, "timm_model", None)
        if timm_model is not None:
            return int(timm_model.num_features)
        raise AttributeError(f"Cannot tell the embedding size of {type(self.model).__name__}")

    def forward_features(self, **inputs: torch.Tensor) -> Any:
        return self.model(**inputs)

    def embed(self, **inputs: torch.Tensor) -> torch.Tensor:
        return self.pool_outputs(self.forward_features(**inputs), inputs)

    def pool_outputs(self, outputs: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The embedding `(B, D)` from the model's outputs on `inputs`."""
        if not MODALITIES.get(self.modality).pools_tokens or POOLING_MODES.get(self.pooling).pool is None:
            pooled = getattr(outputs, "pooler_output", None)
            if pooled is None:
                pooled = outputs.last_hidden_state[:, 0]
            return pooled.flatten(1)  # (B, D)
        return pool_tokens(outputs.last_hidden_state, inputs["attention_mask"], self.pooling)  # (B, D)

    def pool_hidden_state(self, hidden: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """One intermediate layer's output as `(B, D)`: text pooled as the embedding is (over the attention mask),
        token maps `(B, N, D)` averaged over tokens, feature maps `(B, C, H, W)` over positions."""
        if MODALITIES.get(self.modality).pools_tokens:
            # An intermediate layer has no pooler: its tokens are averaged instead.
            mode = self.pooling if POOLING_MODES.get(self.pooling).pool is not None else "mean"
            return pool_tokens(hidden, inputs["attention_mask"], mode)
        if hidden.dim() == 4:
            return hidden.mean(dim=(2, 3))
        if hidden.dim() == 3:
            return hidden.mean(dim=1)
        return hidden.flatten(1)

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        return self.embed(**inputs)


def create_backbone(
    name_or_path: str,
    pooling: Optional[Pooling] = None,
    model_args: Optional[ModelArguments] = None,
) -> Backbone:
    """Load a backbone (`AutoModel`) and its processor.

    Pooling defaults to the one a sentence-transformers checkpoint was trained with (`modules.json`, e.g. mean for
    all-MiniLM-L6-v2, the first token for BGE), else mean for text and the model's pooled output for vision.
    """
    model_args = model_args or ModelArguments(model_name_or_path=name_or_path)
    path = resolve_model_path(
        name_or_path, model_args.cache_dir, model_args.model_revision, model_args.token, model_args.trust_remote_code
    )
    config = load_config(path, model_args)
    modality = infer_model_modality(config)
    with readable_weights(path):
        model = AutoModel.from_pretrained(
            path,
            cache_dir=model_args.cache_dir,
            revision=model_args.model_revision,
            token=model_args.token,
            trust_remote_code=model_args.trust_remote_code,
        )
    processor = load_processor(path, modality, model_args)
    if pooling is not None:
        POOLING_MODES.check(pooling)
    entry = MODALITIES.get(modality)
    if pooling is None and entry.sentence_transformers:
        pooling = read_sentence_transformers_pooling(path)
        if pooling:
            logger.info("Pooling: %s, from %s's sentence-transformers configuration", pooling, name_or_path)
    return Backbone(model, processor, modality, pooling or entry.default_pooling)
