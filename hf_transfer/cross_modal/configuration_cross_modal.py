"""`CrossModalConfig`: an image classifier whose body is a text encoder (BERT, RoBERTa, MiniLM, ...).

This file and `modeling_cross_modal.py` import nothing of hf_transfer: a saved model carries copies of both (its
`auto_map`), so it loads with `trust_remote_code=True` where hf_transfer is not installed.
"""

from __future__ import annotations

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

__all__ = ["CrossModalConfig"]


class CrossModalConfig(PreTrainedConfig):
    """The text body's own config (`body_config`, nested) and the image side around it.

    Args:
        body_config (`dict` or `PreTrainedConfig`): the config of the text encoder that is the body.
        image_size (`int`, defaults to 28): side of the square images the patch embedder reads.
        patch_size (`int`, defaults to 4): side of a square patch; `image_size` must be a multiple of it.
        num_channels (`int`, defaults to 3): image channels (the image processor converts to RGB).
        classifier_dropout (`float`, defaults to 0.0): dropout on the pooled [CLS] state before the classifier.
        initializer_range (`float`, defaults to 0.02): std of the normal init of the new layers.
    """

    model_type = "cross_modal_transformer"
    sub_configs_defaults = {"body_config": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    body_config: PreTrainedConfig | dict | None = None
    image_size: int = 28
    patch_size: int = 4
    num_channels: int = 3
    classifier_dropout: float = 0.0
    initializer_range: float = 0.02

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2
