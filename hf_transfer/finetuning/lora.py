"""LoRA through peft: default target modules for any backbone, and the whole task head trained and saved.

Targets: `resolve_lora_target_modules` looks at the layers the backbone actually has: every Linear of the backbone
(attention projections, MLPs, a pooler's dense layer), else its pointwise convolutions (timm and transformers CNNs).
Adapting every Linear rather than the query / value projections alone is what brings LoRA level with full
fine-tuning on small data (QLoRA's finding, and ours: benchmarks/RESULTS.md, "LoRA defaults"); a frozen pretrained
pooler between the adapted layers and the head would otherwise pass the head features nothing adapts.
Head layers are never targets.

Head: every layer of `hf_transfer.models.heads.head_module_names` (the new layers the checkpoint lacked, the final
Linear and its container) goes into `modules_to_save` by exact module path, so it is trained in full and
stored in the adapter; a reload then rebuilds the very model that was trained.
"""

from __future__ import annotations

import logging
from typing import Optional, Sequence

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from transformers import PreTrainedModel
from transformers.pytorch_utils import Conv1D

from ..errors import ConfigError
from ..models.heads import head_module_names, is_inside
from .arguments import LoraArguments

__all__ = ["add_lora_adapters", "resolve_lora_target_modules", "create_lora_model"]

logger = logging.getLogger(__name__)


def _backbone_modules(model: nn.Module, head: Sequence[str], kinds: tuple[type, ...]) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if n and isinstance(m, kinds) and not is_inside(n, head)]


def _compact(model: nn.Module, paths: Sequence[str]) -> list[str]:
    """`paths` as leaf names where a name selects exactly those modules (peft matches by suffix), else as paths."""
    chosen = set(paths)
    by_leaf: dict[str, set[str]] = {}
    for name, _ in model.named_modules():
        if name:
            by_leaf.setdefault(name.rsplit(".", 1)[-1], set()).add(name)
    out: list[str] = []
    for path in paths:
        leaf = path.rsplit(".", 1)[-1]
        entry = leaf if by_leaf[leaf] <= chosen else path
        if entry not in out:
            out.append(entry)
    return out


def resolve_lora_target_modules(model: PreTrainedModel, head_modules: Optional[Sequence[str]] = None) -> list[str]:
    """Module names (leaf names, or exact paths where names are ambiguous) to adapt by default."""
    head = list(head_modules) if head_modules is not None else head_module_names(model)
    linears = _backbone_modules(model, head, (nn.Linear, Conv1D))  # Conv1D: GPT-2's Linear, transposed
    model_type = getattr(model.config, "model_type", None)
    if linears:  # transformers, MLP-Mixers, ConvNeXt: every Linear of the backbone
        return _compact(model, [n for n, _ in linears])
    convs = [(n, m) for n, m in _backbone_modules(model, head, (nn.Conv2d,)) if m.groups == 1]
    pointwise = [n for n, m in convs if tuple(m.kernel_size) == (1, 1)]
    if pointwise or convs:  # CNNs: pointwise (1x1) convolutions, else every dense convolution
        return _compact(model, pointwise or [n for n, _ in convs])
    raise ConfigError(
        f"No default LoRA target modules for {type(model).__name__} (model_type {model_type!r}): it has no Linear "
        "or Conv2d layer outside its head; pass --lora_target_modules with names of layers to adapt."
    )


def add_lora_adapters(
    module: nn.Module, args: LoraArguments, *, skip: Sequence[str] = (), what: str = "the module"
) -> PeftModel:
    """`module` (a tower or a body, no head of its own) with LoRA adapters on `--lora_target_modules`, or on its
    default targets (`resolve_lora_target_modules`, leaving out the modules named in `skip`); peft freezes every
    other weight."""
    targets = args.lora_target_modules or resolve_lora_target_modules(module, head_modules=list(skip))
    config = LoraConfig(
        r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout, target_modules=targets, bias="none"
    )
    logger.info("LoRA on %s: %s (r=%d)", what, targets, args.lora_r)
    return get_peft_model(module, config)


def create_lora_model(
    model: PreTrainedModel,
    args: LoraArguments,
    *,
    new_modules: Optional[Sequence[str]] = None,
    sample_inputs: Optional[dict[str, torch.Tensor]] = None,
) -> PeftModel:
    """Wrap `model` in LoRA adapters; the task head is trained in full and saved (`modules_to_save`).

    `args`: the adapters' rank, alpha, dropout and target modules.
    `new_modules` are the layers the checkpoint lacked (`TransferModel.new_modules`); without them the head is
    found from the module tree alone (`hf_transfer.models.heads.head_module_names`). With `sample_inputs` (one collated
    batch, no labels) the wrapped model runs once, so an architecture LoRA breaks stops with a clear error.
    """
    head = head_module_names(model, new_modules)
    targets = args.lora_target_modules or resolve_lora_target_modules(model, head)
    names = [n for n, _ in model.named_modules() if n]
    matched = {t: [n for n in names if n == t or n.endswith("." + t)] for t in targets}
    missing = [t for t, hits in matched.items() if not hits]
    if missing:
        leaf_names = sorted({n.rsplit(".", 1)[-1] for n in names})
        raise ConfigError(
            f"--lora_target_modules {missing} match no module of {type(model).__name__}; "
            f"some of its layer names: {leaf_names[:20]}."
        )
    in_head = sorted({n for hits in matched.values() for n in hits if is_inside(n, head)})
    if in_head:
        raise ConfigError(
            f"--lora_target_modules would adapt {in_head}, which belong to the task head ({', '.join(head)}) and are "
            "trained in full; name backbone layers only."
        )
    # Batch norms update their running statistics while training, and peft saves only what `modules_to_save`
    # names: they are saved too (peft's own advice), else a reload would normalise with the old statistics.
    batch_norms = [n for n, m in model.named_modules() if isinstance(m, _BatchNorm) and not is_inside(n, head)]
    to_save = head + batch_norms
    saved_names = _compact(model, to_save)
    # peft picks `modules_to_save` by suffix (`pre_classifier` ends with `classifier`): make sure the names
    # given select exactly these modules, so what is trained is what is saved and reloaded.
    stray = sorted(n for n in names if any(n.endswith(s) for s in saved_names) and not is_inside(n, to_save))
    if stray:
        raise ConfigError(
            f"The head modules {head} of {type(model).__name__} would also select {stray} in peft (it matches "
            "modules_to_save by suffix); use --strategy full for this model."
        )
    config = LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=targets,
        modules_to_save=saved_names,
        bias="none",
    )
    logger.info(
        "LoRA on %s (r=%d, alpha=%d); head %s trained in full%s",
        targets,
        args.lora_r,
        args.lora_alpha,
        head,
        f", {len(batch_norms)} batch norms saved" if batch_norms else "",
    )
    peft_model = get_peft_model(model, config)
    if sample_inputs is not None:
        _check_forward(peft_model, sample_inputs)
    return peft_model


@torch.no_grad()
def _check_forward(model: PeftModel, sample_inputs: dict[str, torch.Tensor]) -> None:
    """One forward pass on a sample batch, so an architecture whose code breaks on peft's wrappers stops here,
    before training, and not in a user's reload (MobileNetV2 reads `stride` from its convolutions)."""
    was_training = model.training
    model.eval()
    try:
        model(**sample_inputs)
    except (AttributeError, TypeError, RuntimeError) as err:
        raise ConfigError(
            f"LoRA adapters on {model.peft_config['default'].target_modules} break {type(model.get_base_model()).__name__}'s "
            f"forward pass ({type(err).__name__}: {err}); use --strategy full, or --lora_target_modules naming other layers."
        ) from err
    finally:
        model.train(was_training)
