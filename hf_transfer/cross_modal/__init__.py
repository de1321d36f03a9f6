"""Cross-modal fine-tuning: a text encoder's transformer body (MiniLM, BERT, RoBERTa, DistilBERT, ...) transferred
to image classification through a trained patch embedder (Lu et al. 2021, frozen pretrained transformers; Shen et
al. 2023, ORCA), against the same architecture at random init.

`arguments` (what a user sets), `tuning` (`BODY_TUNINGS`: frozen, lora, full; `BODY_INITS`: pretrained, random),
`configuration_cross_modal` and `modeling_cross_modal` (the saved model's own code, which imports nothing of
hf_transfer and is copied next to its weights), `model` (building, tuning, saving). The recipe is
`recipes/cross_modal.py`.

Importing this package registers `CrossModalConfig` and `CrossModalForImageClassification` with `AutoConfig` and
`AutoModelForImageClassification`, so a saved model loads, and runs in `pipeline("image-classification")`, without
`trust_remote_code`. (`import hf_transfer` alone stays light and registers nothing.)
"""

from transformers import AutoConfig, AutoModelForImageClassification

from .arguments import CrossModalArguments
from .configuration_cross_modal import CrossModalConfig
from .modeling_cross_modal import CrossModalForImageClassification
from .tuning import BODY_INITS, BODY_TUNINGS, BodyInitEntry, BodyTuningEntry

__all__ = [
    "CrossModalArguments",
    "CrossModalConfig",
    "CrossModalForImageClassification",
    "BODY_INITS",
    "BODY_TUNINGS",
    "BodyInitEntry",
    "BodyTuningEntry",
]

AutoConfig.register(CrossModalConfig.model_type, CrossModalConfig, exist_ok=True)
AutoModelForImageClassification.register(CrossModalConfig, CrossModalForImageClassification, exist_ok=True)
