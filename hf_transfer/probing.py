"""Linear probing: frozen features extracted once and cached, then a multinomial logistic regression.

The features are what the pretrained weights compute: the input of the first layer of the classification
model that the checkpoint lacked (captured by a forward pre-hook). For most heads that layer is the final
`nn.Linear` and the fitted probe is copied into it. Heads with new hidden layers (RoBERTa's dense + tanh,
DistilBERT's `pre_classifier`, DeBERTa's pooler, ModernBERT's head) get those layers set to a fixed
standardising map of the features and the probe fitted on what the final Linear then sees. Either way the
result is a plain `AutoModelFor...Classification` checkpoint that computes exactly the probe: no custom
class, no remote code, no random layer.

The probe follows the CLIP / DINOv2 protocol: features are standardised, the L2 strength is swept on
a log grid and chosen by validation accuracy, each fit is a full-batch L-BFGS solve in torch warm-
started from the previous (stronger) regularisation; the standardisation is folded back into the
weights so the saved head takes raw features.

References:
    Radford et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision" (CLIP), sec. 3.2.
    Oquab et al. 2023, "DINOv2: Learning Robust Visual Features without Supervision", linear evaluation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Sequence

import torch
from datasets import Dataset
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .cache import default_cache_dir
from .constants import DEFAULT_L2_GRID
from .errors import ConfigError
from .models.heads import get_classifier, get_classifier_name, head_module_names, is_inside, resolve_module

__all__ = [
    "DEFAULT_L2_GRID",
    "ProbeResult",
    "FeatureCache",
    "extract_features",
    "fit_linear_probe",
    "load_probe_into_classifier",
    "locate_probe_features",
    "ProbeLayout",
    "probe_classification_model",
    "standardization",
]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# Feature extraction and its cache


class FeatureCache:
    """Extracted features on disk, one safetensors file per (model, data, preprocessing) key.

    Files are written to a temporary name and renamed, so an interrupted extraction never leaves a
    truncated file that a later run would trust.
    """

    def __init__(self, cache_dir: Optional[str | os.PathLike] = None):
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir() / "features"

    @staticmethod
    def make_key(**parts: Any) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def path(self, key: str) -> Path:
        return self.cache_dir / f"{key}.safetensors"

    def load(self, key: str) -> Optional[dict[str, torch.Tensor]]:
        file = self.path(key)
        if not file.is_file():
            return None
        try:
            return load_file(str(file))
        except Exception as err:  # a corrupt file is a cache miss, not a failure
            logger.warning("Ignoring unreadable cached features %s (%s)", file, err)
            return None

    def save(self, key: str, tensors: dict[str, torch.Tensor], metadata: Optional[dict[str, str]] = None) -> Path:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}-", suffix=".tmp", dir=self.cache_dir)
        os.close(fd)
        try:
            save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
            os.replace(tmp, self.path(key))
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return self.path(key)


def _capture_input(module: nn.Module, store: list[torch.Tensor]):
    return module.register_forward_pre_hook(lambda _module, args: store.append(args[0].detach().float().cpu()))


@torch.inference_mode()
def _run_extraction(
    model: nn.Module,
    dataset: Dataset,
    collate_fn: Callable,
    batch_size: int,
    device: torch.device,
    desc: str,
    module_name: Optional[str] = None,
) -> dict[str, torch.Tensor]:
    captured: list[torch.Tensor] = []
    hook = _capture_input(resolve_module(model, module_name) if module_name else get_classifier(model), captured)
    labels: list[torch.Tensor] = []
    was_training = model.training
    model.eval()
    try:
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn)
        for batch in tqdm(loader, desc=desc, unit="batch"):
            batch_labels = batch.pop("labels")
            model(**{k: v.to(device) for k, v in batch.items()})
            labels.append(batch_labels)
    finally:
        hook.remove()
        model.train(was_training)
    features = torch.cat(captured).flatten(1)  # (N, D)
    return {"features": features, "labels": torch.cat(labels).long()}  # (N,)


def extract_features(
    model: nn.Module,
    dataset: Dataset,
    collate_fn: Callable,
    *,
    cache: Optional[FeatureCache],
    cache_key: Optional[str],
    batch_size: int = 64,
    device: Optional[torch.device] = None,
    desc: str = "Extracting features",
    module_name: Optional[str] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The input of module `module_name` (default: the head's final Linear) for every row of `dataset`, and labels.

    The model runs frozen, in eval mode. With a cache and key, a second call (another probe setting, a
    rerun) reads them back instead.
    """
    if cache is not None and cache_key is not None:
        cached = cache.load(cache_key)
        if cached is not None and cached["features"].shape[0] == len(dataset):
            logger.info("%s: using cached features %s", desc, cache.path(cache_key))
            return cached["features"], cached["labels"]
    device = device or next(model.parameters()).device
    # Clone outside inference mode: inference tensors cannot take part in the probe's autograd.
    out = _run_extraction(model, dataset, collate_fn, batch_size, device, desc, module_name)
    out = {k: v.clone() for k, v in out.items()}
    if cache is not None and cache_key is not None:
        path = cache.save(cache_key, out)
        logger.info("%s: cached %s features at %s", desc, tuple(out["features"].shape), path)
    return out["features"], out["labels"]


# --------------------------------------------------------------------------------------------------
# The probe


@dataclass
class ProbeResult:
    """A fitted probe: `weight` (C, D) and `bias` (C,) act on raw (unstandardised) features."""

    weight: torch.Tensor
    bias: torch.Tensor
    l2: float
    validation_accuracy: float
    sweep: dict[float, float] = field(default_factory=dict)  # l2 -> validation accuracy
    validation_loss: float = float("nan")

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        return (features @ self.weight.T + self.bias).argmax(-1)


def _fit_one(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float, init: Optional[tuple], max_iter: int
) -> tuple[torch.Tensor, torch.Tensor]:
    d = x.shape[1]
    weight = torch.zeros(num_classes, d, dtype=x.dtype) if init is None else init[0].clone()
    bias = torch.zeros(num_classes, dtype=x.dtype) if init is None else init[1].clone()
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=max_iter, history_size=20, tolerance_grad=1e-6, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = x @ weight.T + bias  # (N, C)
        loss = nn.functional.cross_entropy(logits, y) + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return weight.detach(), bias.detach()


# Pseudo-rows of the pooled variance mixed into each feature's variance (see `standardization`).
STANDARDIZE_PRIOR_ROWS = 32
# How many extra decades the L2 sweep may extend past an edge of its grid that wins.
MAX_GRID_EXTENSIONS = 3


def standardization(
    features: torch.Tensor, prior_rows: int = STANDARDIZE_PRIOR_ROWS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and scale per feature, with each variance shrunk towards the features' average variance.

    With n training rows, var_j = (n * s_j^2 + n0 * mean(s^2)) / (n + n0): on thousands of rows this is the
    usual per-feature standardisation, on 8 examples per class it cannot blow up a feature that happened
    to be near-constant on those rows (plain per-feature scaling is degenerate there).
    """
    x = features.double()
    n = x.shape[0]
    mean = x.mean(0)
    var = x.var(0, unbiased=False)
    pooled = var.mean()
    shrunk = (n * var + prior_rows * pooled) / (n + prior_rows)
    return mean, shrunk.sqrt().clamp(min=1e-6)


def fit_linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    val_features: torch.Tensor,
    val_labels: torch.Tensor,
    num_classes: int,
    l2_grid: Sequence[float] = DEFAULT_L2_GRID,
    max_iter: int = 200,
    standardize: Literal["shrunk", "per_feature", "global"] = "shrunk",
    extend_grid: bool = True,
) -> ProbeResult:
    """Multinomial logistic regression on frozen features, L2 strength chosen on the validation split.

    The objective for each `l2` in the grid is  mean CE(W z + b, y) + l2 / 2 * ||W||^2  over
    standardised features z = (x - mu) / sigma (mu, sigma from the training split, `standardization`).
    The best validation accuracy wins; ties (common on small validation sets) go to the lower validation
    cross-entropy, so the choice does not default to one end of the grid. When an edge of the grid still
    wins, the sweep goes on past it, a decade at a time (up to `MAX_GRID_EXTENSIONS` decades), unless
    `extend_grid=False` (callers that need exactly the grid's values in `sweep`).
    `standardize`: `shrunk` (default; per-feature variances shrunk towards their mean, `standardization`),
    `per_feature` (plain), or `global` (one std for all features, for a handful of rows such as an episode's
    support set).
    """
    if train_features.shape[0] == 0 or val_features.shape[0] == 0:
        raise ValueError("Linear probing needs non-empty train and validation features.")
    if standardize == "global":
        mean = train_features.double().mean(0)
        std = (train_features.double() - mean).pow(2).mean().sqrt().clamp(min=1e-6).expand_as(mean)
    else:
        mean, std = standardization(train_features, STANDARDIZE_PRIOR_ROWS if standardize == "shrunk" else 0)
    z_train = (train_features.double() - mean) / std  # (N, D)
    z_val = (val_features.double() - mean) / std
    y_train = train_labels.long()
    y_val = val_labels.long()

    fits: dict[float, tuple[float, float, torch.Tensor, torch.Tensor]] = {}

    def sweep(values: Sequence[float], init: Optional[tuple]) -> Optional[tuple]:
        for l2 in values:
            weight, bias = _fit_one(z_train, y_train, num_classes, l2, init, max_iter)
            init = (weight, bias)
            logits = z_val @ weight.T + bias
            accuracy = float((logits.argmax(-1) == y_val).double().mean())
            loss = float(nn.functional.cross_entropy(logits, y_val))
            fits[l2] = (accuracy, loss, weight, bias)
            logger.info("probe l2=%.1e validation accuracy=%.4f loss=%.4f", l2, accuracy, loss)
        return init

    def best() -> float:
        return min(fits, key=lambda l2: (-fits[l2][0], fits[l2][1]))

    grid = sorted({float(v) for v in l2_grid}, reverse=True)  # strongest first: each fit warm-starts the next
    sweep(grid, None)
    for _ in range(MAX_GRID_EXTENSIONS if extend_grid else 0):
        chosen, strongest, weakest = best(), max(fits), min(fits)
        if len(fits) < 2 or chosen not in (strongest, weakest) or (chosen == weakest and weakest == 0.0):
            break
        if chosen == strongest:
            sweep([strongest * 10.0], None)
        else:
            sweep([weakest / 10.0], fits[weakest][2:])
    l2 = best()
    accuracy, loss, weight, bias = fits[l2]
    # Fold the standardisation in: W z + b = (W / sigma) x + (b - (W / sigma) mu).
    raw_weight = weight / std  # (C, D)
    raw_bias = bias - raw_weight @ mean  # (C,)
    sweep_accuracy = {k: v[0] for k, v in sorted(fits.items(), reverse=True)}
    return ProbeResult(raw_weight.float(), raw_bias.float(), l2, accuracy, sweep_accuracy, loss)


def load_probe_into_classifier(model: nn.Module, probe: ProbeResult) -> None:
    """Copy the probe into the model's final head layer (shapes must match)."""
    head = get_classifier(model)
    if tuple(head.weight.shape) != tuple(probe.weight.shape):
        raise ValueError(f"Probe weight {tuple(probe.weight.shape)} does not fit head {tuple(head.weight.shape)}.")
    with torch.no_grad():
        head.weight.copy_(probe.weight.to(head.weight.dtype))
        if head.bias is not None:
            head.bias.copy_(probe.bias.to(head.bias.dtype))


# --------------------------------------------------------------------------------------------------
# Where a probe reads its features, for any head


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


# Shifts tried for the first hidden Linear (see `_set_hidden_layers`), chosen on validation accuracy.
HIDDEN_SHIFTS: tuple[float, ...] = (0.0, 6.0)


@torch.no_grad()
def _set_hidden_layers(model: nn.Module, layout: ProbeLayout, train_features: torch.Tensor, shift: float) -> None:
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
def _replay_head(
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

    hooks = [feature_module.register_forward_pre_hook(substitute), _capture_input(get_classifier(model), out)]
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


def probe_classification_model(
    model: nn.Module,
    splits: dict[str, Dataset],
    collate_fn: Callable,
    *,
    cache: Optional[FeatureCache],
    cache_identity: dict[str, Any],
    new_modules: Optional[Sequence[str]] = None,
    l2_grid: Sequence[float] = DEFAULT_L2_GRID,
    max_iter: int = 200,
    batch_size: int = 64,
) -> tuple[ProbeResult, dict[str, dict[str, float]]]:
    """Probe `model` on frozen pretrained features and write the result into its head; score each split.

    Features are the input of the first newly initialised layer (`locate_probe_features`), so they come from
    pretrained weights only and are cached under a key that names that layer. When the head has hidden new
    layers, they are set to a fixed map of those features (`_set_hidden_layers`, the shift chosen on
    validation) and the probe is fitted on what the final Linear then sees: the saved model computes exactly
    the probe. `new_modules` come from the loading report (`TransferModel.new_modules`); without it the head
    found from the module tree counts as new. `cache_identity` names the model and preprocessing; each split
    adds its `datasets` fingerprint. Returns the probe and `{split: {"accuracy": ..., "f1": ...}}`.
    """
    from .metrics import compute_classification_metrics

    new = list(new_modules) if new_modules is not None else head_module_names(model)
    from .processing import sample_inputs

    device = next(model.parameters()).device
    sample = sample_inputs(splits["train"], collate_fn, device)
    layout = locate_probe_features(model, new, sample)
    if layout.has_hidden_layers:
        logger.info(
            "Probe features: input of %s; hidden head layers %s set from them", layout.feature_module, layout.hidden
        )

    features: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for name, dataset in splits.items():
        key = FeatureCache.make_key(
            **cache_identity,
            model_class=type(model).__name__,
            new_modules=sorted(new),
            feature_module=layout.feature_module,
            split=name,
            data=dataset._fingerprint,
            rows=len(dataset),
        )
        features[name] = extract_features(
            model,
            dataset,
            collate_fn,
            cache=cache,
            cache_key=key,
            batch_size=batch_size,
            desc=f"Extracting {name} features",
            module_name=layout.feature_module,
        )
    num_classes = get_classifier(model).out_features

    def fit(head_features: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> ProbeResult:
        return fit_linear_probe(*head_features["train"], *head_features["validation"], num_classes, l2_grid, max_iter)

    if not layout.has_hidden_layers:
        head_features = features
        probe = fit(head_features)
    else:
        best = None
        for shift in HIDDEN_SHIFTS:
            _set_hidden_layers(model, layout, features["train"][0], shift)
            candidate = {n: (_replay_head(model, layout, x, sample, batch_size), y) for n, (x, y) in features.items()}
            probe = fit(candidate)
            logger.info("hidden shift %.1f: validation accuracy %.4f", shift, probe.validation_accuracy)
            if best is None or (probe.validation_accuracy, -probe.validation_loss) > (
                best[1].validation_accuracy,
                -best[1].validation_loss,
            ):
                best = (shift, probe, candidate)
        shift, probe, head_features = best
        _set_hidden_layers(model, layout, features["train"][0], shift)
    load_probe_into_classifier(model, probe)
    classifier = get_classifier(model)
    scores = {}
    with torch.inference_mode():
        for name, (x, y) in head_features.items():
            logits = classifier(x.to(device=device, dtype=classifier.weight.dtype))  # what the saved model computes
            scores[name] = compute_classification_metrics(logits.argmax(-1).cpu().numpy(), y.numpy())
    return probe, scores
