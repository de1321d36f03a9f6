"""From a name to loaded parts: a built-in alias, a local folder or a Hub id resolved to a folder, its config,
its modality and its processor, read through the ordinary `from_pretrained` code path with clear errors.

Every loading path (the recipes' `load_transfer_model`, `hf-transfer rank`'s backbones) goes through here, so a
model this toolkit will not run is refused once, in one line: one whose architecture is code in its own folder
(`auto_map`, without --trust_remote_code), or whose weights are a pickle that torch will not load safely.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any, Iterator, Optional

from transformers import AutoConfig, PretrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES,
    MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
)

from ..constants import Modality
from ..errors import ModelLoadError
from ..modalities import MODALITIES
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


def is_builtin_model(name: str) -> bool:
    """Whether `name` is a built-in alias (`hf_transfer.registry`): its head is always new."""
    return get_builtin_model(name) is not None


def _remote_code_error(name_or_path: str, config: Optional[dict] = None) -> ModelLoadError:
    """The one line for a model whose classes are Python files of its own repository (`auto_map`)."""
    config = config or {}
    named = ", ".join(sorted(set(str(v) for v in (config.get("auto_map") or {}).values())))
    details = [f"config.json's auto_map: {named}"] if named else []
    if config.get("model_type"):
        details.append(f"model_type {config['model_type']!r} is not one transformers implements")
    return ModelLoadError(
        f"{name_or_path!r} is a model with its own code"
        + (f" ({'; '.join(details)})" if details else "")
        + ", and running a model's code is refused unless asked for, since it runs with your rights. If you trust it, "
        "pass --trust_remote_code true (the recipes' flag; hf-transfer rank runs no remote code); otherwise choose a "
        "model of an architecture transformers implements (BERT, RoBERTa, ViT, ...)."
    )


def _is_remote_code_refusal(err: BaseException) -> bool:
    """Whether transformers refused to load `err`'s model because it needs `trust_remote_code`."""
    return isinstance(err, ValueError) and "trust_remote_code" in str(err)


def _check_no_remote_code(folder: str, trust_remote_code: bool) -> None:
    """A local folder whose config names its own classes (`auto_map`) for a model type transformers lacks: refused
    here, in one line, unless `trust_remote_code` (transformers would raise a multi-line `ValueError` later)."""
    if trust_remote_code:
        return
    try:
        config = json.loads(Path(folder, "config.json").read_text())
    except (OSError, ValueError):
        return  # unreadable: `load_config` says so
    if isinstance(config, dict) and config.get("auto_map") and config.get("model_type") not in CONFIG_MAPPING_NAMES:
        raise _remote_code_error(folder, config)


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
        _check_no_remote_code(name_or_path, trust_remote_code)
        return name_or_path
    try:
        AutoConfig.from_pretrained(
            name_or_path, cache_dir=cache_dir, revision=revision, token=token, trust_remote_code=trust_remote_code
        )
    except Exception as err:  # OSError, ValueError, HTTP errors: all mean "cannot resolve"
        if _is_remote_code_refusal(err):
            raise _remote_code_error(name_or_path) from err
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
    """The model's config; one needing its own code without --trust_remote_code is one `ModelLoadError`."""
    model_args = model_args or ModelArguments(model_name_or_path=path)
    try:
        return AutoConfig.from_pretrained(
            path,
            cache_dir=model_args.cache_dir,
            revision=model_args.model_revision,
            token=model_args.token,
            trust_remote_code=model_args.trust_remote_code,
            **kwargs,
        )
    except ValueError as err:
        if _is_remote_code_refusal(err):
            raise _remote_code_error(path) from err
        raise


def load_processor(path: str, modality: Modality, model_args: Optional[ModelArguments] = None):
    """The tokenizer (text) or image processor (vision) saved with the model."""
    model_args = model_args or ModelArguments(model_name_or_path=path)
    entry = MODALITIES.get(modality)
    kwargs = dict(
        cache_dir=model_args.cache_dir,
        revision=model_args.model_revision,
        token=model_args.token,
        trust_remote_code=model_args.trust_remote_code,
    )
    try:
        return entry.processor_class.resolve().from_pretrained(path, **kwargs)
    except (OSError, ValueError) as err:
        if _is_remote_code_refusal(err):
            raise _remote_code_error(path) from err
        raise ModelLoadError(
            f"No {entry.processor_noun} found for {path!r}: save it next to the model "
            f"(`processor.save_pretrained(dir)`). Cause: {err}"
        ) from err


def _is_refused_pickle(err: BaseException) -> bool:
    """Whether `err` is torch (weights-only unpickling) or transformers (a torch too old to unpickle safely)
    refusing a pickled weights file."""
    if isinstance(err, pickle.UnpicklingError):
        return True
    return isinstance(err, ValueError) and "torch.load" in str(err) and "safetensors" in str(err)


@contextlib.contextmanager
def readable_weights(path: str) -> Iterator[None]:
    """A weights file that cannot be read (truncated by an interrupted copy or download, or not safetensors at
    all), a pickle torch refuses to load, or a model needing its own code is one `ModelLoadError` naming the file
    or folder, not a deserialisation traceback."""
    try:
        yield
    except Exception as err:
        from safetensors import SafetensorError

        if _is_refused_pickle(err):
            files = sorted(Path(path).glob("*.bin")) if os.path.isdir(path) else []
            why = (
                "it holds more than tensors, which torch's safe (weights-only) loader refuses"
                if isinstance(err, pickle.UnpicklingError)
                else "this torch is older than 2.6, which transformers needs to unpickle weights safely"
            )
            raise ModelLoadError(
                f"The weights of {path!r} are a pickle ({', '.join(f.name for f in files) or 'pytorch_model.bin'}) "
                f"that cannot be loaded safely ({why}); a pickle can run code, so it is refused for safety. Convert "
                "it to safetensors where you trust it (load it, then save_pretrained(folder) writes "
                "model.safetensors), or use a safetensors copy of the model."
            ) from err
        if _is_remote_code_refusal(err):
            raise _remote_code_error(path) from err
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
