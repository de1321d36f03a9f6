"""The record of what a run did (`<output_dir>/transfer_run.json`), written by every recipe at its end.

The model card (`hf_transfer.model_card`) is rendered from this record (`RunRecord.load`) and `trainer_state.json`
alone, so a card can be rebuilt and pushed long after the run. The record holds the run's scores per split
(`RunRecord.scores`), read once out of the flat keys of `all_results.json` (`split_scores`) when the run ends.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

import torch

from .constants import HP_SEARCH_PREFIX, PSEUDO_LABEL_PREFIX, SEMI_SUPERVISED_PREFIX
from .errors import DataError
from .outputs import write_json_atomic
from .registry import get_builtin_model
from .tasks import TASKS

__all__ = [
    "RUN_INFO_FILE",
    "RESULTS_FILE",
    "SPLITS",
    "LossRecord",
    "RunRecord",
    "non_default_arguments",
    "looks_like_hub_id",
    "split_metric_key",
    "split_scores",
]

RUN_INFO_FILE = "transfer_run.json"
RESULTS_FILE = "all_results.json"

# The splits a score is of. A key's split may carry a prefix before it: a domain (`source_eval`, `target_test`), a
# stage (`probe_eval`) or an evaluation (`meta_test`, `linear_eval_validation`); its last part is one of these.
SPLITS = ("train", "eval", "validation", "test")

_NOT_HYPERPARAMETERS = (
    "output_dir",
    "logging_dir",
    "report_to",
    "hub_model_id",
    "push_to_hub",
    "hub_private_repo",
    "cache_dir",
    "feature_cache_dir",
    "label_names",
    "remove_unused_columns",
)


def _fresh_instance(obj: Any) -> Any:
    """A default instance of `obj`'s class (TrainingArguments needs its output_dir), or None."""
    try:
        return type(obj)(output_dir=obj.output_dir) if hasattr(obj, "output_dir") else type(obj)()
    except Exception:  # e.g. a dataclass whose defaults alone fail validation
        return None


def non_default_arguments(*argument_objects: Any) -> dict[str, Any]:
    """Fields that differ from a fresh instance of their class, without secrets or local paths.

    Comparing with a fresh instance (not the field defaults) hides values that `__post_init__`
    derives, as sentence-transformers' model cards do.
    """
    changed: dict[str, Any] = {}
    for obj in argument_objects:
        if obj is None or not dataclasses.is_dataclass(obj):
            continue
        fresh = _fresh_instance(obj)
        for f in dataclasses.fields(obj):
            if not f.init or f.name.startswith("_") or f.name in _NOT_HYPERPARAMETERS or "token" in f.name:
                continue
            value = getattr(obj, f.name)
            if fresh is not None:
                default = getattr(fresh, f.name, dataclasses.MISSING)
            elif f.default is not dataclasses.MISSING:
                default = f.default
            else:
                default = dataclasses.MISSING
            if value != default and _is_plain(value):
                changed[f.name] = (
                    value.value if hasattr(value, "value") and not isinstance(value, (int, float)) else value
                )
    return changed


def _is_plain(value: Any) -> bool:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    return hasattr(value, "value")  # enums


def _hardware(world_size: int) -> str:
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    else:
        device = f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    return f"{world_size} process(es) on {device}"


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for package in ("hf-transfer-toolkit", "transformers", "peft", "datasets", "accelerate", "torch", "timm"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return versions


def looks_like_hub_id(name: str) -> bool:
    return name.count("/") == 1 and not os.path.exists(name) and not name.startswith((".", "/"))


def _base_model_hub_id(base_model: str) -> Optional[str]:
    """The Hub id of a built-in alias, or the name itself when it reads as a Hub id (not a local folder)."""
    builtin = get_builtin_model(base_model)
    if builtin is not None:
        return builtin.hub_id
    return base_model if looks_like_hub_id(base_model) else None


def _is_score(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def split_metric_key(key: str, metrics: Iterable[str]) -> Optional[tuple[str, str]]:
    """`("test", "micro_f1")` for `test_micro_f1`, `("source_eval", "accuracy")` for `source_eval_accuracy`: a key
    of `all_results.json` as its split and one of `metrics`; None for keys that are not a split's metric (runtimes,
    per-label scores). Longer names are tried first, so `micro_f1` is not read as `f1`."""
    for metric in sorted(metrics, key=len, reverse=True):
        split = key[: -len(metric) - 1]
        if key.endswith(f"_{metric}") and split.rpartition("_")[2] in SPLITS:
            return split, metric
    return None


def _label_score_names(task: str, label_names: Sequence[Any]) -> list[str]:
    """What a task's per-label F1 is per: each label, or for a token classifier each entity type (not IOB tag)."""
    names = [str(name) for name in label_names]
    if TASKS.get(task).per_token:
        return sorted({name[2:] for name in names if name != "O"})
    return names


def split_scores(
    metrics: Mapping[str, Any], task: str, label_names: Sequence[Any]
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """The run's scores out of the flat keys of `all_results.json`: `{split: {metric: value}}` for the task's metrics
    (finite values only), and `{split: {label: score}}` for the validation (`eval`) and test splits that score every
    label (`{split}_f1_{label}`, or the task's own `per_label_metric`; tasks with per-label scores only)."""
    entry = TASKS.get(task)
    scores: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        parsed = split_metric_key(key, entry.metrics)
        if parsed is not None and _is_score(value):
            split, metric = parsed
            scores.setdefault(split, {})[metric] = float(value)
    label_scores: dict[str, dict[str, float]] = {}
    if entry.per_label_scores is not None:
        names = _label_score_names(task, label_names)
        for split in ("eval", "test"):
            values = [metrics.get(f"{split}_{entry.per_label_metric}_{name}") for name in names]
            if all(_is_score(value) for value in values):
                label_scores[split] = {name: float(value) for name, value in zip(names, values)}
    return scores, label_scores


@dataclass
class LossRecord:
    """The loss a contrastive run trained with, as the card shows it: its class name, `get_config_dict()`, BibTeX."""

    name: str
    config: dict[str, Any] = field(default_factory=dict)
    citation: Optional[str] = None

    @classmethod
    def from_dict(cls, loss: Mapping[str, Any]) -> LossRecord:
        return cls(
            name=str(loss.get("name") or ""), config=dict(loss.get("config") or {}), citation=loss.get("citation")
        )


@dataclass
class RunRecord:
    """What ran: the recipe, its base model and data, the method, how the output folder is saved, and its scores.

    Args:
        recipe: the recipe's name (`finetune`, `domain_adapt`, `maml`, `contrastive_pretrain`).
        base_model: `--model_name_or_path` as given (a built-in alias, a folder or a Hub id).
        base_model_path: the folder it resolved to.
        modality: `text` or `vision`.
        method: the strategy or method, as the card shows it (e.g. `lora`, `dann (full)`).
        datasets: the data the run read (built-in names, Hub ids or file paths).
        label_names: the classes of the saved head (the target's name for regression; empty for a backbone).
        arguments: the argument dataclasses of the run; the card lists the values that differ from the defaults.
            Not saved: `hyperparameters` holds what the card needs of them.
        world_size: how many processes trained.
        task: a `hf_transfer.tasks.TASKS` name (`single_label`, `multi_label`, `regression`, `token_classification`).
        sentence_transformers: the folder is a sentence-transformers model (a pooled classifier or backbone).
        pooling: its pooling, when it has one.
        saved_as: `backbone` for a pretrained backbone without a head (contrastive pretraining), `dual_encoder`
            (align), `cross_modal` (a text body classifying images, with its own model code).
        domains: `{"source": ..., "target": ...}` of a domain-adaptation run.
        loss: the contrastive loss (a `LossRecord`, or a dict with its `name`, `config`, `citation`).

    Resolved when the record is first saved (`resolved`), from the run's machine, and kept as loaded after that:
        base_model_hub_id: the base model's Hub id (a built-in alias's, or the name when it is one); None for a folder.
        hyperparameters: the `arguments` that differ from their defaults, secrets and local paths left out.
        hardware: the processes and device that trained.
        versions: python's and the libraries' versions.

    Filled from the results when the run ends (`with_results`):
        scores: `{split: {metric: value}}` for the task's metrics; a split is `eval`, `test`, or prefixed by a
            domain or stage (`source_eval`, `target_test`, `probe_eval`).
        label_scores: `{split: {label: F1}}` of a multi-label run (per label) or a token classifier (per entity
            type), for `eval` and `test`.
        trainable_params, total_params: the parameter counts.
        train_runtime: the seconds training took.
        trained: False when the run trained nothing (`--num_train_epochs 0`); None when not said.
        validation_source: where the validation (`eval`) scores come from when it is not a held-out split (the
            probe's out-of-fold cross-validation: `validation_source` in the results); None for a held-out split.
        hp_search: what a hyperparameter search (`--hp_search`) ran and chose, the `hp_search_*` keys of the
            results without their prefix (`trials`, `objective`, `objective_value`, `runtime`, `best_<name>`);
            None without one.
        semi_supervised: what the run learned from unlabelled rows, the `semi_supervised_*` keys of the results
            without their prefix (`method`, `unlabelled_samples`, `pseudo_labelled_samples`, `thresholds`, ...);
            None without an unlabelled pool.
        pseudo_labels: what target self-training ended with, the `target_pseudo_label*` keys of the results
            (`target_pseudo_labelled_rows`, `target_pseudo_label_thresholds`, ...); None without it.
    """

    recipe: str
    base_model: str
    base_model_path: str
    modality: str
    method: str
    datasets: list[str]
    label_names: list[str]
    arguments: tuple = ()
    world_size: int = 1
    task: str = "single_label"
    sentence_transformers: bool = False
    pooling: Optional[str] = None
    saved_as: Optional[str] = None
    domains: Optional[dict[str, str]] = None
    loss: Optional[LossRecord] = None
    base_model_hub_id: Optional[str] = None
    hyperparameters: Optional[dict[str, Any]] = None
    hardware: Optional[str] = None
    versions: dict[str, str] = field(default_factory=dict)
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    label_scores: dict[str, dict[str, float]] = field(default_factory=dict)
    trainable_params: Optional[int] = None
    total_params: Optional[int] = None
    train_runtime: Optional[float] = None
    trained: Optional[bool] = None
    validation_source: Optional[str] = None
    hp_search: Optional[dict[str, Any]] = None
    semi_supervised: Optional[dict[str, Any]] = None
    pseudo_labels: Optional[dict[str, Any]] = None

    def __post_init__(self) -> None:
        if isinstance(self.loss, Mapping):  # recipes and saved files give the loss as a dict
            self.loss = LossRecord.from_dict(self.loss)

    def resolved(self) -> RunRecord:
        """This record with its base model's Hub id, hyperparameters, hardware and versions filled, all at once, the
        first time (no `hardware` yet): a loaded record keeps what the machine of its run found."""
        if self.hardware is not None:
            return self
        return dataclasses.replace(
            self,
            base_model_hub_id=self.base_model_hub_id or _base_model_hub_id(self.base_model),
            hyperparameters=self.hyperparameters
            if self.hyperparameters is not None
            else non_default_arguments(*self.arguments),
            hardware=_hardware(self.world_size),
            versions=self.versions or _versions(),
        )

    def with_results(self, metrics: Mapping[str, Any]) -> RunRecord:
        """This record with the scores and run facts of `metrics` (what `all_results.json` holds)."""
        scores, label_scores = split_scores(metrics, self.task, self.label_names)
        trainable, total, runtime = (metrics.get(k) for k in ("trainable_params", "total_params", "train_runtime"))
        trained, source = metrics.get("trained"), metrics.get("validation_source")
        search = {k[len(HP_SEARCH_PREFIX) :]: v for k, v in metrics.items() if k.startswith(HP_SEARCH_PREFIX)}
        semi = {k[len(SEMI_SUPERVISED_PREFIX) :]: v for k, v in metrics.items() if k.startswith(SEMI_SUPERVISED_PREFIX)}
        pseudo = {k: v for k, v in metrics.items() if k.startswith(PSEUDO_LABEL_PREFIX)}
        return dataclasses.replace(
            self,
            scores=scores,
            label_scores=label_scores,
            trainable_params=trainable if isinstance(trainable, int) and not isinstance(trainable, bool) else None,
            total_params=total if isinstance(total, int) and not isinstance(total, bool) else None,
            train_runtime=float(runtime) if _is_score(runtime) else None,
            trained=trained if isinstance(trained, bool) else None,
            validation_source=source if isinstance(source, str) else None,
            hp_search=search or None,
            semi_supervised=semi or None,
            pseudo_labels=pseudo or None,
        )

    def label_score_names(self) -> list[str]:
        """The rows of `label_scores`, in order: the labels, or a token classifier's entity types (sorted)."""
        return _label_score_names(self.task, self.label_names)

    def dataset_of_split(self, split: str) -> tuple[Optional[str], str]:
        """`(dataset, split)` of a domain's split (`target_eval` -> the target's data, `eval`); `(None, split)` for
        the others, which are of the run's data."""
        domain, _, domain_split = split.partition("_")
        if domain_split and (self.domains or {}).get(domain):
            return self.domains[domain], domain_split
        return None, split

    def to_dict(self) -> dict[str, Any]:
        """The JSON of `transfer_run.json`: derived fields resolved, `arguments` left out (`hyperparameters` says
        what the card needs of them), unset extras left out."""
        record = self.resolved()
        info = {
            "recipe": record.recipe,
            "base_model": record.base_model,
            "base_model_hub_id": record.base_model_hub_id,
            "base_model_path": record.base_model_path,
            "modality": record.modality,
            "method": record.method,
            "task": record.task,
            "datasets": list(record.datasets),
            "label_names": list(record.label_names),
            "hyperparameters": record.hyperparameters,
            "hardware": record.hardware,
            "versions": record.versions,
            "scores": record.scores,
            "label_scores": record.label_scores,
            "trainable_params": record.trainable_params,
            "total_params": record.total_params,
            "train_runtime": record.train_runtime,
            "trained": record.trained,
        }
        extras = {
            "sentence_transformers": record.sentence_transformers,
            "pooling": record.pooling,
            "saved_as": record.saved_as,
            "domains": record.domains,
            "loss": dataclasses.asdict(record.loss) if record.loss is not None else None,
            "validation_source": record.validation_source,
            "hp_search": record.hp_search,
            "semi_supervised": record.semi_supervised,
            "pseudo_labels": record.pseudo_labels,
        }
        info.update({key: value for key, value in extras.items() if value})
        return info

    def save(self, output_dir: str | os.PathLike) -> Path:
        """Write `output_dir/transfer_run.json` (main process, after training)."""
        return write_json_atomic(Path(output_dir) / RUN_INFO_FILE, self.to_dict())

    @classmethod
    def load(cls, output_dir: str | os.PathLike) -> RunRecord:
        """The record of the run in `output_dir`. Files written before a field existed get its default, and their
        scores are read from `all_results.json`, as the run would have recorded them."""
        path = Path(output_dir) / RUN_INFO_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: it is written by the recipes at the end of a run.")
        try:
            info = json.loads(path.read_text())
        except ValueError as err:
            raise DataError(f"{path} is not valid JSON ({err}): rerun the recipe to write it again.") from None
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name != "arguments"}
        required = [name for name, f in fields.items() if f.default is f.default_factory is dataclasses.MISSING]
        missing = [name for name in required if not isinstance(info, dict) or info.get(name) is None]
        if missing:
            raise DataError(
                f"{path} is not a run record (no {', '.join(missing)}): rerun the recipe to write it again."
            )
        known = {name: value for name, value in info.items() if name in fields and value is not None}
        record = cls(**known)
        if "scores" not in info:  # recorded before the record held its scores
            results = Path(output_dir) / RESULTS_FILE
            record = record.with_results(json.loads(results.read_text()) if results.is_file() else {})
        return record

    def merged(self) -> RunRecord:
        """The record of the `merged/` folder a LoRA run also writes (`--merge_lora`)."""
        return dataclasses.replace(self, method=f"{self.method} (LoRA merged)")
