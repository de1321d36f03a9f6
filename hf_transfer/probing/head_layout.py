"""Where a probe reads its features for any head, and the fixed map that new hidden head layers are set to.

The features are the input of the first newly initialised layer the forward pass reaches; new layers between it and
the final Linear (RoBERTa's dense + tanh, DistilBERT's `pre_classifier`, ModernBERT's head) are set from the data
and replayed as the model runs them, so the saved model computes exactly the probe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..models.heads import get_classifier, get_classifier_name, is_inside
from .features import capture_input
from .logistic import standardization

__all__ = ["ProbeLayout", "locate_probe_features", "set_hidden_layers", "replay_head", "HIDDEN_SHIFTS"]


@dataclass
class ProbeLayout:
    """Where the probe's features come from, and which new head layers lie between them and the final Linear.

    `feature_module` is the first newly initialised layer the forward pass reaches (or the final Linear
    when the checkpoint lacks nothing else): its input is computed by pretrained weights only. `hidden` are
    the new layers after it and before `classifier` (RoBERTa's `classifier.dense`, DistilBERT's
    `pre_classifier`, ModernBERT's `head.dense` and `head.norm`), in the order they run.
    """

    feature_module: str
    hidden: list[str]
    classifier: str

    @property
    def has_hidden_layers(self) -> bool:
        return bool(self.hidden)


@torch.inference_mode()
def locate_probe_features(model: nn.Module, new_modules: Sequence[str], sample: dict[str, torch.Tensor]) -> ProbeLayout:
    """Run one sample batch and find where the pretrained computation ends (`ProbeLayout`).

    Raises `ConfigError` when a pretrained layer runs after a new one (new layers inside the backbone: a
    probe would read random weights) or when a new head layer is neither a Linear nor a normalisation.
    """
    classifier = get_classifier_name(model)
    leaves = [(n, m) for n, m in model.named_modules() if n and any(True for _ in m.parameters(recurse=False))]
    order: list[str] = []
    hooks = [m.register_forward_pre_hook(lambda _m, _a, name=n: order.append(name)) for n, m in leaves]
    was_training = model.training
    model.eval()
    try:
        model(**sample)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    new = list(new_modules) + [classifier]
    first_new = next(i for i, n in enumerate(order) if is_inside(n, new))
    after = order[first_new:]
    pretrained_after = [n for n in after if not is_inside(n, new)]
    if pretrained_after:
        raise ConfigError(
            f"{type(model).__name__} has newly initialised layers ({', '.join(new_modules)}) that feed pretrained "
            f"ones ({', '.join(pretrained_after[:3])}): a probe would read random weights. Load a checkpoint that "
            "has those layers, or use --strategy full or lora."
        )
    seen: list[str] = []
    for name in after:
        if name not in seen:
            seen.append(name)
    hidden = [n for n in seen if n != classifier]
    modules = {n: model.get_submodule(n) for n in hidden}
    unsupported = [n for n, m in modules.items() if not isinstance(m, nn.Linear) and not _is_norm(m)]
    if unsupported or (hidden and not isinstance(modules[hidden[0]], nn.Linear)):
        raise ConfigError(
            f"The new head layers {unsupported or hidden[:1]} of {type(model).__name__} are not Linear or "
            "normalisation layers, which a linear probe cannot set; use --strategy full or lora."
        )
    return ProbeLayout(feature_module=seen[0], hidden=hidden, classifier=classifier)


def _is_norm(module: nn.Module) -> bool:
    params = dict(module.named_parameters(recurse=False))
    return (
        set(params) <= {"weight", "bias"}
        and all(p.dim() == 1 for p in params.values())
        and "Norm" in type(module).__name__
    )


# Shifts tried for the first hidden Linear (see `set_hidden_layers`), chosen on validation accuracy.
HIDDEN_SHIFTS: tuple[float, ...] = (0.0, 6.0)


@torch.no_grad()
def set_hidden_layers(model: nn.Module, layout: ProbeLayout, train_features: torch.Tensor, shift: float) -> None:
    """Set the new hidden layers to a fixed map of the pretrained features, computed from data alone.

    The first hidden Linear standardises its input (z = (x - mu) / sigma, projected on the leading principal
    directions when it narrows) and adds `shift`; later Linears pass their input on (identity), norms start at
    weight 1 and bias 0. The activation between them then acts on standardised features: with shift 0 a tanh
    squashes z, with shift 6 a ReLU or GELU is (almost exactly) linear on z. No random weight is left.
    """
    mean, std = standardization(train_features)
    first = model.get_submodule(layout.hidden[0])
    d_in, d_out = first.in_features, first.out_features
    scale = torch.diag(1.0 / std)  # (D_in, D_in)
    if d_out < d_in:  # narrowing: keep the leading principal directions of the standardised features
        z = (train_features.double() - mean) / std
        _, _, v = torch.linalg.svd(z - z.mean(0), full_matrices=False)
        projection = torch.zeros(d_out, d_in, dtype=torch.float64)
        projection[: v.shape[0]] = v[:d_out]
    else:
        projection = torch.eye(d_out, d_in, dtype=torch.float64)
    weight = projection @ scale  # (D_out, D_in)
    first.weight.copy_(weight.to(first.weight.dtype))
    if first.bias is not None:
        first.bias.copy_((shift - weight @ mean).to(first.bias.dtype))
    for name in layout.hidden[1:]:
        module = model.get_submodule(name)
        if isinstance(module, nn.Linear):
            module.weight.copy_(torch.eye(module.out_features, module.in_features, dtype=module.weight.dtype))
        else:
            module.weight.fill_(1.0)
        if module.bias is not None:
            module.bias.zero_()


def _minimal_inputs(sample: dict[str, torch.Tensor], rows: int) -> dict[str, torch.Tensor]:
    """`sample` (one row) repeated `rows` times; token tensors cut to two positions, which is all a replay needs."""
    out = {}
    for key, value in sample.items():
        if value.dim() >= 2 and not value.is_floating_point():
            value = value[:, :2]
        out[key] = value.expand(rows, *value.shape[1:])
    return out


@torch.inference_mode()
def replay_head(
    model: nn.Module, layout: ProbeLayout, features: torch.Tensor, sample: dict[str, torch.Tensor], batch_size: int
) -> torch.Tensor:
    """The input the final Linear sees when the feature module is fed `features`: the head's hidden layers run
    as the model runs them (their activations and order are the model's own), on a minimal dummy input
    whose features are replaced by the cached ones."""
    feature_module = model.get_submodule(layout.feature_module)
    device = next(model.parameters()).device
    chunk: list[torch.Tensor] = []
    out: list[torch.Tensor] = []

    def substitute(_module, args):
        return (chunk[0].to(device=device, dtype=args[0].dtype), *args[1:])

    hooks = [feature_module.register_forward_pre_hook(substitute), capture_input(get_classifier(model), out)]
    was_training = model.training
    model.eval()
    try:
        for start in range(0, features.shape[0], batch_size):
            chunk[:] = [features[start : start + batch_size]]
            model(**_minimal_inputs(sample, chunk[0].shape[0]))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return torch.cat(out).flatten(1).clone()  # (N, D_head)
