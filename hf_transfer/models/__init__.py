"""Pretrained backbones behind one name: built-in offline aliases, local directories and Hub ids.

Everything here goes through the ordinary Hub code path (`AutoConfig` / `AutoModel...` / `AutoTokenizer` /
`AutoImageProcessor` `.from_pretrained`); the built-in aliases of `hf_transfer.registry` only point that path at
weights that ship as Python packages, so the toolkit works with `HF_HUB_OFFLINE=1`.

Where each concern lives: `arguments` (`ModelArguments`), `builtins` (preparing the built-in aliases, the
EfficientNet conversion), `loading` (name -> folder, config, modality, processor), `classification` (stock
`AutoModelFor*Classification` models and their label checks), `heads` (which layers are the task head, for any
architecture), `pooling` / `pooled_classifier` / `sentence_transformers_format` (a classifier that pools like its
sentence-transformers checkpoint, saved in that format), `backbone` (`AutoModel` + pooling, for contrastive
pretraining).
"""

from .arguments import ModelArguments
from .backbone import Backbone, create_backbone
from .classification import count_parameters, create_classification_model, load_classification_model
from .heads import get_classifier, get_classifier_name, head_module_names, newly_initialized_modules
from .loading import (
    Modality,
    infer_model_modality,
    is_builtin_model,
    load_config,
    load_processor,
    model_fingerprint,
    readable_weights,
    resolve_model_path,
)

__all__ = [
    "ModelArguments",
    "Modality",
    "Backbone",
    "create_backbone",
    "create_classification_model",
    "load_classification_model",
    "count_parameters",
    "get_classifier",
    "get_classifier_name",
    "head_module_names",
    "newly_initialized_modules",
    "infer_model_modality",
    "is_builtin_model",
    "load_config",
    "load_processor",
    "model_fingerprint",
    "readable_weights",
    "resolve_model_path",
]
