"""From a name to loaded parts: a built-in alias, a local folder or a Hub id resolved to a folder, its config,
its modality and its processor, read through the ordinary `from_pretrained` code path with clear errors."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator, Literal, Optional

from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer, PretrainedConfig
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES,
    MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
)

from ..errors import ModelLoadError
from ..registry import get_builtin_model, list_builtin_models
from .arguments import ModelArguments

__all__ = [
    "Modality",
    "is_builtin_model",
    "resolve_model_path",
    "infer_model_modality",
    "load_config",
    "load_processor",
    "readable_weights",
    "model_fingerprint",
]

Modality = Literal["text", "vision"]


def is_builtin_model(name: str) -> bool:
    """Whether `name` is a built-in alias (`hf_transfer.registry`): its head is always new."""
    return get_builtin_model(name) is not None


def resolve_model_path(
    name_or_path: str,
    cache_dir: Optional[str] = None,
    revision: str = "main",
    token: Optional[str] = None,
    trust_remote_code: bool = False,
) -> str:
    """Turn a built-in alias, a directory or a Hub id into something `from_pretrained` accepts.

    Checks that a config can be read, so a typo fails here with the fix rather than deep in a load.
    """
    builtin = get_builtin_model(name_or_path)
    if builtin is not None:
        return builtin.resolve()
    if os.path.isdir(name_or_path):
        adapter = os.path.join(name_or_path, "adapter_config.json")
        if not os.path.isfile(os.path.join(name_or_path, "config.json")) and os.path.isfile(adapter):
            try:
                base = json.loads(Path(adapter).read_text()).get("base_model_name_or_path")
            except (OSError, ValueError):
                base = None
            raise ModelLoadError(
                f"--model_name_or_path {name_or_path!r} is a peft adapter, not a model: pass its base model"
                + (f" ({base!r})" if base else "")
                + " and load the adapter with PeftModel.from_pretrained, or the "
                "merged/ folder of that run (--merge_lora true)."
            )
        if not os.path.isfile(os.path.join(name_or_path, "config.json")):
            raise ModelLoadError(
                f"--model_name_or_path {name_or_path!r} is a directory without config.json; "
                "point it at a folder written by `save_pretrained`."
            )
        return name_or_path
    try:
        AutoConfig.from_pretrained(
            name_or_path, cache_dir=cache_dir, revision=revision, token=token, trust_remote_code=trust_remote_code
        )
    except Exception as err:  # OSError, ValueError, HTTP errors: all mean "cannot resolve"
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        raise ModelLoadError(
            f"Unknown model {name_or_path!r}: it is not a built-in alias ({', '.join(list_builtin_models())}), "
            "not a local directory, and could not be loaded from the Hub"
            + (" (HF_HUB_OFFLINE is set)" if offline else "")
            + f". Pass one of the built-in aliases or an existing directory. Cause: {type(err).__name__}: {err}"
        ) from err
    return name_or_path


def infer_model_modality(config: PretrainedConfig) -> Modality:
    """Text or vision, from the config alone (timm wrappers and image-classification types are vision)."""
    model_type = getattr(config, "model_type", None)
    if model_type in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES and (
        model_type not in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES
    ):
        return "vision"
    if model_type in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES:
        return "text"
    raise ModelLoadError(
        f"Model type {model_type!r} has neither a sequence- nor an image-classification class in transformers; "
        "choose a text encoder (BERT-like) or an image backbone (ViT, ConvNeXt, timm via timm_wrapper)."
    )


def load_config(path: str, model_args: Optional[ModelArguments] = None, **kwargs: Any) -> PretrainedConfig:
    model_args = model_args or ModelArguments(model_name_or_path=path)
    return AutoConfig.from_pretrained(
        path,
        cache_dir=model_args.cache_dir,
        revision=model_args.model_revision,
        token=model_args.token,
        trust_remote_code=model_args.trust_remote_code,
        **kwargs,
    )


def load_processor(path: str, modality: Modality, model_args: Optional[ModelArguments] = None):
    """The tokenizer (text) or image processor (vision) saved with the model."""
    model_args = model_args or ModelArguments(model_name_or_path=path)
    cls = AutoTokenizer if modality == "text" else AutoImageProcessor
    kwargs = dict(
        cache_dir=model_args.cache_dir,
        revision=model_args.model_revision,
        token=model_args.token,
        trust_remote_code=model_args.trust_remote_code,
    )
    try:
        return cls.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as err:
        kind = "tokenizer" if modality == "text" else "image processor"
        raise ModelLoadError(
            f"No {kind} found for {path!r}: save it next to the model (`processor.save_pretrained(dir)`). Cause: {err}"
        ) from err


@contextlib.contextmanager
def readable_weights(path: str) -> Iterator[None]:
    """A weights file that cannot be read (truncated by an interrupted copy or download, or not safetensors at
    all) is one `ModelLoadError` naming the file, not safetensors' deserialisation traceback."""
    try:
        yield
    except Exception as err:
        from safetensors import SafetensorError

        if not isinstance(err, SafetensorError) and "safetensors" not in type(err).__module__:
            raise
        files = sorted(Path(path).glob("*.safetensors")) if os.path.isdir(path) else []
        raise ModelLoadError(
            f"The weights of {path!r} cannot be read ({err}): {', '.join(f.name for f in files) or 'the file'} is "
            "truncated or corrupt. Copy or download it again, or save the model again with save_pretrained."
        ) from err


def model_fingerprint(path: str) -> str:
    """A cheap identity of a model's weights: file names, sizes and modification times in its folder.

    Hub snapshots live under a commit hash, so the path alone already pins them; for local folders the
    stat data changes whenever the weights are rewritten.
    """
    entries = []
    root = Path(path)
    if root.is_dir():
        for file in sorted(root.iterdir()):
            if file.suffix in (".safetensors", ".bin", ".json") and file.is_file():
                st = file.stat()
                entries.append((file.name, st.st_size, st.st_mtime_ns))
    return hashlib.sha256(json.dumps([str(root.resolve()) if root.exists() else path, entries]).encode()).hexdigest()
