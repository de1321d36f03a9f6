"""Candidates to rank and their features of the target data: a backbone's embedding, its intermediate layers, the
same architecture with random weights, and (where the checkpoint has one) its pretrained head's predictions.

A candidate is written `NAME_OR_PATH`, `NAME_OR_PATH@LAYER` (an index into the model's `hidden_states`; negative
counts from the top), `NAME_OR_PATH@all` (every layer), and any of these prefixed `random:` (the architecture with
freshly initialised weights: the floor a pretrained candidate should clear). One forward pass per batch gives a
backbone's embedding and all its requested layers; features are cached like the probe's (`FeatureCache`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import torch
import transformers
from datasets import Dataset, DatasetDict
from torch.utils.data import DataLoader
from transformers import AutoModel

from ..data import infer_modality
from ..errors import ConfigError
from ..modalities import MODALITIES
from ..models import ModelArguments
from ..models.backbone import Backbone, create_backbone
from ..probing import FeatureCache
from ..probing.features import length_order
from ..processing import create_collator, preprocess_dataset
from ..tasks import TASKS

__all__ = ["Candidate", "CandidateFeatures", "CandidateRequest", "extract_candidate_features", "parse_candidates"]

logger = logging.getLogger(__name__)

RANDOM_PREFIX = "random:"
FEATURES_VERSION = 1  # bump when what is extracted changes, so stale cached features are not read


@dataclass(frozen=True)
class Candidate:
    """One row of the ranking: a model, the layer read (`None`: its embedding), pretrained or random weights."""

    model: str
    layer: Optional[int] = None
    random_init: bool = False

    @property
    def name(self) -> str:
        layer = "" if self.layer is None else f"@{self.layer}"
        return f"{RANDOM_PREFIX if self.random_init else ''}{self.model}{layer}"


@dataclass(frozen=True)
class CandidateRequest:
    """A model to load once and what to read from it: its embedding, and layers (`"all"` or indices); `source_head`
    False skips the pretrained head's predictions (`hf-transfer select` reads features only)."""

    model: str
    layers: Union[None, str, tuple[int, ...]] = None
    random_init: bool = False
    embedding: bool = True
    source_head: bool = True


@dataclass
class CandidateFeatures:
    """Per split: the candidate's features `(N, D)`, the labels `(N,)`, and the source head's softmax `(N, Z)`
    (`None` for layers, random weights, and checkpoints without a pretrained classification head)."""

    candidate: Candidate
    features: dict[str, torch.Tensor]
    labels: dict[str, torch.Tensor]
    source_probabilities: Optional[dict[str, torch.Tensor]] = None
    extraction_seconds: float = 0.0


def parse_candidates(specs: Sequence[str]) -> list[CandidateRequest]:
    """`["minilm", "minilm@all", "random:minilm"]` -> one request per (model, weights), its layers merged."""
    if not specs:
        raise ConfigError(
            "--model_name_or_path is empty: name at least two models or layers, e.g. --model_name_or_path minilm@all."
        )
    entries: dict[tuple[str, bool], dict[str, Any]] = {}
    for spec in specs:
        random_init = spec.startswith(RANDOM_PREFIX)
        body = spec[len(RANDOM_PREFIX) :] if random_init else spec
        model, at, layer = body.rpartition("@") if "@" in body else (body, "", "")
        if not model:
            raise ConfigError(f"Candidate {spec!r} names no model; write NAME_OR_PATH, NAME_OR_PATH@LAYER or @all.")
        entry = entries.setdefault((model, random_init), {"layers": None, "embedding": False})
        if not at:
            entry["embedding"] = True
        elif layer == "all":
            entry["layers"] = "all"
        else:
            try:
                index = int(layer)
            except ValueError:
                raise ConfigError(
                    f"Candidate {spec!r}: the layer {layer!r} is not an integer or `all`; e.g. {model}@3 or {model}@all."
                ) from None
            if entry["layers"] != "all":
                entry["layers"] = (entry["layers"] or set()) | {index}
    return [
        CandidateRequest(
            model,
            tuple(sorted(e["layers"])) if isinstance(e["layers"], set) else e["layers"],
            random_init,
            e["embedding"],
        )
        for (model, random_init), e in entries.items()
    ]


def _source_head(path: str, backbone: Backbone) -> Optional[torch.nn.Module]:
    """The checkpoint's own classification model when it has a pretrained head (LEEP and NCE read its softmax)."""
    config = backbone.config
    architectures = getattr(config, "architectures", None) or []
    has_head = any(a.endswith(("ForImageClassification", "ForSequenceClassification")) for a in architectures)
    has_head = has_head or config.model_type == "timm_wrapper"  # timm checkpoints keep their head unless reset
    if not has_head:
        return None
    # The checkpoint's own head reads one class per input: the single-label model of its modality.
    auto = getattr(transformers, TASKS.get("single_label").model_class(backbone.modality))
    try:
        model, info = auto.from_pretrained(path, output_loading_info=True)
    except (OSError, ValueError, KeyError) as err:
        logger.info("No source head for %s (%s)", path, err)
        return None
    if info.get("missing_keys"):
        logger.info("No pretrained source head in %s (missing %s)", path, sorted(info["missing_keys"])[:3])
        return None
    return model.eval()


def _resolve_layers(layers: Union[str, tuple[int, ...]], num_hidden_states: int, model: str) -> list[int]:
    if layers == "all":
        return list(range(num_hidden_states))
    resolved = []
    for layer in layers:
        index = layer + num_hidden_states if layer < 0 else layer
        if not 0 <= index < num_hidden_states:
            raise ConfigError(
                f"{model} has {num_hidden_states} layer outputs (0..{num_hidden_states - 1}, counting the embeddings "
                f"or stem as 0); layer {layer} is out of range."
            )
        resolved.append(index)
    return sorted(set(resolved))


@torch.inference_mode()
def _extract_split(
    backbone: Backbone,
    source_head: Optional[torch.nn.Module],
    dataset: Dataset,
    collate_fn: Any,
    layers: Union[None, str, tuple[int, ...]],
    batch_size: int,
    model_name: str,
) -> dict[str, torch.Tensor]:
    """One pass over `dataset` (longest rows first, order restored): embedding, requested layers, source softmax."""
    order = length_order(dataset) or list(range(len(dataset)))
    loader = DataLoader(dataset.select(order), batch_size=batch_size, collate_fn=collate_fn)
    device = next(backbone.parameters()).device
    parts: dict[str, list[torch.Tensor]] = {}
    resolved: Optional[list[int]] = None
    for batch in loader:
        labels = batch.pop("labels")
        inputs = {k: v.to(device) for k, v in batch.items()}
        outputs = backbone.model(**inputs, output_hidden_states=layers is not None)
        parts.setdefault("labels", []).append(labels)
        parts.setdefault("embedding", []).append(backbone.pool_outputs(outputs, inputs).float().cpu())
        if layers is not None:
            hidden_states = outputs.hidden_states
            if resolved is None:
                resolved = _resolve_layers(layers, len(hidden_states), model_name)
            for index in resolved:
                pooled = backbone.pool_hidden_state(hidden_states[index], inputs)
                parts.setdefault(f"layer_{index}", []).append(pooled.float().cpu())
        if source_head is not None:
            logits = source_head(**inputs).logits
            parts.setdefault("source_probabilities", []).append(logits.float().softmax(-1).cpu())
    restore = torch.empty(len(order), dtype=torch.long)
    restore[torch.tensor(order)] = torch.arange(len(order))
    return {name: torch.cat(chunks)[restore] for name, chunks in parts.items()}


def extract_candidate_features(
    request: CandidateRequest,
    splits: DatasetDict,
    *,
    model_args: Optional[ModelArguments] = None,
    max_seq_length: int = 128,
    batch_size: int = 64,
    seed: int = 0,
    cache: Optional[FeatureCache] = None,
    device: Optional[torch.device] = None,
) -> list[CandidateFeatures]:
    """Load `request.model` once and read every candidate it stands for on every split of `splits`."""
    start = time.perf_counter()
    model_args = model_args or ModelArguments(model_name_or_path=request.model)
    backbone = create_backbone(request.model, model_args=model_args)
    path = getattr(backbone.model, "name_or_path", request.model)
    data_modality = infer_modality(splits)
    if MODALITIES.get(data_modality) is not MODALITIES.get(backbone.modality):
        raise ConfigError(
            f"{request.model} is a {backbone.modality} model but the data holds "
            f"{data_modality}: rank candidates of the data's modality."
        )
    source_head = None
    if request.random_init:
        torch.manual_seed(seed)
        backbone.model = AutoModel.from_config(backbone.config)
    elif request.embedding and request.source_head:
        source_head = _source_head(path, backbone)
    backbone.eval()
    device = device or torch.device("cpu")
    backbone.to(device)
    if source_head is not None:
        source_head.to(device)
    processed = preprocess_dataset(splits, backbone.processor, backbone.modality, max_seq_length, f"{request.model}: ")
    collate_fn = create_collator(backbone.processor, backbone.modality)

    per_split: dict[str, dict[str, torch.Tensor]] = {}
    for split, dataset in processed.items():
        key = FeatureCache.make_key(
            version=FEATURES_VERSION,
            purpose="transferability",
            model=path,
            random_init=request.random_init,
            seed=seed if request.random_init else None,
            layers=request.layers,
            embedding=request.embedding,
            **({} if request.source_head else {"source_head": False}),  # rank's keys stay as they were
            pooling=backbone.pooling,
            max_seq_length=max_seq_length,
            split=split,
            data=dataset._fingerprint,
            rows=len(dataset),
        )
        cached = cache.load(key) if cache is not None else None
        if cached is None:
            extracted = _extract_split(
                backbone, source_head, dataset, collate_fn, request.layers, batch_size, request.model
            )
            cached = {k: v.clone() for k, v in extracted.items()}  # out of inference mode: probes fit on them
            if cache is not None:
                cache.save(key, cached)
        per_split[split] = cached
    seconds = time.perf_counter() - start

    first = next(iter(per_split.values()))
    names = ["embedding"] if request.embedding else []
    names += sorted((n for n in first if n.startswith("layer_")), key=lambda n: int(n.split("_")[1]))
    labels = {split: tensors["labels"] for split, tensors in per_split.items()}
    candidates = []
    for name in names:
        layer = None if name == "embedding" else int(name.split("_")[1])
        has_source = name == "embedding" and "source_probabilities" in first
        candidates.append(
            CandidateFeatures(
                Candidate(request.model, layer, request.random_init),
                {split: tensors[name] for split, tensors in per_split.items()},
                labels,
                {split: tensors["source_probabilities"] for split, tensors in per_split.items()}
                if has_source
                else None,
                extraction_seconds=seconds / len(names),
            )
        )
    return candidates
