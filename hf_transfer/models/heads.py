"""Which layers of a classification model are its task head, and which of them the checkpoint lacked.

A stock `AutoModelFor{Sequence,Image}Classification` built on a backbone checkpoint has layers that
`from_pretrained` initialises at random: the final Linear always, and for many families more (RoBERTa's
`classifier.dense`, DistilBERT's `pre_classifier`, DeBERTa's `pooler`, ModernBERT's `head`, BERT's pooler
when the checkpoint has none). Everything here is derived from what the loading reported and from the
module tree, never from a per-architecture list, so a new architecture that follows transformers'
conventions needs no code:

- `newly_initialized_modules`: the modules whose every parameter was missing from (or mismatched in) the
  checkpoint, as exact module paths;
- `head_module_names`: what a recipe must train in full and save next to LoRA adapters: the new modules,
  the container of the final Linear when it sits outside the backbone, and that Linear itself.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Optional, Sequence

from torch import nn

from ..errors import ModelLoadError

__all__ = [
    "get_classifier",
    "get_classifier_name",
    "trained_classifier",
    "newly_initialized_modules",
    "head_module_names",
    "topmost_module_names",
    "resolve_module",
    "is_inside",
]


def _parameter_module(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else ""


def _ancestors(path: str) -> list[str]:
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def is_inside(name: str, paths: Iterable[str]) -> bool:
    """Whether module path `name` is one of `paths` or lies inside one of them."""
    return any(name == p or name.startswith(p + ".") for p in paths)


def topmost_module_names(names: Iterable[str]) -> list[str]:
    """`names` without those that lie inside another of them (`classifier.dense` goes when `classifier` is in)."""
    unique = sorted(set(names))
    chosen = set(unique)
    return [n for n in unique if not any(a in chosen for a in _ancestors(n))]


def newly_initialized_modules(model: nn.Module, loading_info: Mapping[str, Iterable]) -> list[str]:
    """Module paths whose parameters `from_pretrained` initialised instead of loading.

    `loading_info` is what `from_pretrained(..., output_loading_info=True)` returns: `missing_keys`, and
    `mismatched_keys` as `(key, checkpoint shape, model shape)` (a head replaced for another label count).
    A module is reported once, at the highest level whose parameters are all new: `classifier` for
    RoBERTa's two-layer head, `pooler` for DeBERTa-v2's, `timm_model.classifier` for a timm model.
    """
    new_params = set(loading_info.get("missing_keys") or ())
    new_params |= {
        entry[0] if isinstance(entry, (tuple, list)) else entry for entry in loading_info.get("mismatched_keys") or ()
    }
    own_params = {name for name, _ in model.named_parameters()}
    new_params &= own_params  # buffers and tied names are not layers to train
    if not new_params:
        return []
    params_under: dict[str, set[str]] = {}
    for name in own_params:
        for ancestor in [_parameter_module(name), *_ancestors(_parameter_module(name))]:
            if ancestor:
                params_under.setdefault(ancestor, set()).add(name)
    modules = set()
    for name in new_params:
        module = _parameter_module(name)
        for ancestor in _ancestors(module):  # climb while the parent holds nothing but new parameters
            if params_under[ancestor] <= new_params:
                module = ancestor
            else:
                break
        modules.add(module)
    return topmost_module_names(modules)


def _backbone_attribute(model: nn.Module) -> Optional[str]:
    prefix = getattr(model, "base_model_prefix", None)
    return prefix if prefix and isinstance(getattr(model, prefix, None), nn.Module) else None


def head_module_names(model: nn.Module, new_modules: Optional[Sequence[str]] = None) -> list[str]:
    """The task head: the layers LoRA leaves out of its adapters and trains (and saves) in full.

    That is the newly initialised modules, plus the final Linear with its top-level container when that
    container is not the backbone (RoBERTa's `classifier` holds `dense` and `out_proj`; a timm model's
    `timm_model.classifier` stays alone). When the loading report is unknown (`new_modules=None`), every
    top-level child with parameters besides the backbone counts as head (DistilBERT's `pre_classifier`).
    """
    classifier = get_classifier_name(model)
    backbone = _backbone_attribute(model)
    top = classifier.split(".", 1)[0]
    names = set(new_modules or ())
    names.add(top if top != backbone and "." in classifier and backbone is not None else classifier)
    if new_modules is None and backbone is not None:
        names |= {n for n, child in model.named_children() if n != backbone and any(True for _ in child.parameters())}
    return topmost_module_names(names)


def resolve_module(model: nn.Module, name: str) -> nn.Module:
    """The module at path `name` of the transformers model, also when `model` is wrapped by peft.

    Inside a peft model the path goes through the base model, and a `modules_to_save` wrapper stands for the
    trained copy it holds (the module that actually runs).
    """
    get_base = getattr(model, "get_base_model", None)
    module = get_base() if callable(get_base) else model
    for part in name.split("."):
        module = module.get_submodule(part)
        copies = getattr(module, "modules_to_save", None)
        if isinstance(copies, nn.ModuleDict) and len(copies):
            adapter = getattr(module, "active_adapter", None)
            adapter = adapter[0] if isinstance(adapter, (list, tuple)) else adapter
            module = copies[adapter] if adapter in copies else next(iter(copies.values()))
    return module


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


def trained_classifier(model: nn.Module) -> nn.Linear:
    """The final `nn.Linear` that runs: `get_classifier`, and inside a peft model the trained copy its
    `modules_to_save` wrapper holds (`resolve_module`)."""
    get_base = getattr(model, "get_base_model", None)
    base = get_base() if callable(get_base) else model
    parts = get_classifier_name(base).split(".")
    path = []  # the path in the transformers model: peft's wrapper levels (modules_to_save.<adapter>) dropped
    for i, part in enumerate(parts):
        if part == "original_module" or (i > 0 and parts[i - 1] == "modules_to_save") or part == "modules_to_save":
            continue
        path.append(part)
    return resolve_module(model, ".".join(path))
