"""`CrossModalForImageClassification`: images classified by a text encoder's transformer body (Lu et al. 2021,
"Pretrained Transformers as Universal Computation Engines", https://arxiv.org/abs/2103.05247).

The image is cut into patches; a Conv2d (one step per patch) embeds each into the body's input-embedding width; a
learnt [CLS] vector goes first; the body's encoder reads the sequence as `inputs_embeds` (its own position
embeddings and embedding LayerNorm apply, its word embeddings do not), and a Linear classifies the [CLS] output.

Self-contained (torch and transformers only), since a saved model carries a copy of this file.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from transformers import AutoModel, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput

from .configuration_cross_modal import CrossModalConfig

__all__ = ["CrossModalForImageClassification", "CrossModalPreTrainedModel"]


class CrossModalPreTrainedModel(PreTrainedModel):
    config_class = CrossModalConfig
    base_model_prefix = "cross_modal"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, CrossModalForImageClassification):
            with torch.no_grad():
                module.cls_token.normal_(0.0, self.config.initializer_range)


class CrossModalForImageClassification(CrossModalPreTrainedModel):
    """Patch embedder -> [CLS] + patches -> text body (`inputs_embeds`) -> classifier on [CLS].

    Example:

    ```python
    >>> import hf_transfer.cross_modal  # registers the class with the Auto classes
    >>> from transformers import pipeline
    >>> classifier = pipeline("image-classification", model="outputs/cross-modal-fashion_mnist")
    ```
    """

    def __init__(self, config: CrossModalConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.body = AutoModel.from_config(config.body_config)
        width = self.body.get_input_embeddings().embedding_dim  # ALBERT / ELECTRA: narrower than hidden_size
        self.patch_embed = nn.Conv2d(config.num_channels, width, config.patch_size, stride=config.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.body_config.hidden_size, config.num_labels)
        self.post_init()

    def embed_patches(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 1 + N, E): the [CLS] vector, then one embedding per patch in raster order."""
        patches = self.patch_embed(pixel_values).flatten(2).transpose(1, 2)  # (B, N, E)
        return torch.cat([self.cls_token.expand(patches.shape[0], -1, -1), patches], dim=1)

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: Optional[torch.Tensor] = None,
        output_hidden_states: Optional[bool] = None,
        output_attentions: Optional[bool] = None,
        return_dict: Optional[bool] = None,
        **kwargs,
    ) -> ImageClassifierOutput | tuple:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.body(
            inputs_embeds=self.embed_patches(pixel_values),
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state[:, 0]))  # (B, num_labels)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits, labels.to(logits.device))
        if not return_dict:
            output = (logits,)
            return ((loss,) + output) if loss is not None else output
        return ImageClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=getattr(outputs, "hidden_states", None),
            attentions=getattr(outputs, "attentions", None),
        )


CrossModalConfig.register_for_auto_class()
CrossModalForImageClassification.register_for_auto_class("AutoModelForImageClassification")
