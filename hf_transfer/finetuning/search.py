"""The opt-in hyperparameter search of finetune (`--hp_search N`): optuna trials through
`Trainer.hyperparameter_search`, then the run trains with the best trial's values.

Each trial fine-tunes a fresh copy of the model as it stands right before fine-tuning (the loaded or probed model,
wrapped in LoRA adapters of the trial's rank, its regression head on standardised targets) and is scored on the
validation split by the task's headline metric, in the direction the task entry gives (`Task.headline_direction`).
Trials save nothing and report to no tracker: they run in a temporary folder, so nothing of them is left in the
output folder or resumed as the run. The sampler is seeded with `--seed`, so the same command chooses the same values.

What is searched is data: one `SearchSpace` per fine-tuning method (`SEARCH_SPACES`), looked up by the run's
`finetune_method`. The choice is saved as `hp_search.json` in the output folder, so a resumed run trains on with the
values its checkpoints were trained with instead of searching again.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from torch import nn
from transformers import TrainingArguments, set_seed

from .._registry import Registry
from ..constants import HP_SEARCH_PREFIX
from ..outputs import write_json_atomic
from ..tasks import TASKS
from .arguments import LoraArguments
from .trainer import TransferTrainer

__all__ = ["Parameter", "SearchSpace", "SEARCH_SPACES", "SearchResult", "SEARCH_FILE", "choose_hyperparameters"]

logger = logging.getLogger(__name__)

SEARCH_FILE = "hp_search.json"  # the chosen values, in the output folder (read back when the run resumes)


@dataclass(frozen=True)
class Parameter:
    """One searched value: a float in [`low`, `high`] (log-uniform where `log`), or one of `choices`; with
    `scales_given` the choices are multiples of the run's own value (epochs around `--num_train_epochs`)."""

    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[Any, ...] = ()
    scales_given: bool = False

    def options(self, given: Any) -> list[Any]:
        """The values a trial picks from (`choices`, scaled by the run's own value where `scales_given`)."""
        return sorted({factor * given for factor in self.choices}) if self.scales_given else list(self.choices)

    def suggest(self, trial: Any, name: str, given: Any) -> Any:
        if self.choices:
            return trial.suggest_categorical(name, self.options(given))
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def contains(self, value: Any, given: Any) -> bool:
        """Whether `value` is one this parameter can take (tests, and a saved choice read back)."""
        return value in self.options(given) if self.choices else self.low <= value <= self.high


@dataclass(frozen=True)
class SearchSpace:
    """What a search tries for one fine-tuning method (`full`, `lora`): `TrainingArguments` fields and, for LoRA,
    `LoraArguments` fields (the rank, which `model_init` reads to wrap each trial's model)."""

    name: str
    parameters: dict[str, Parameter] = field(default_factory=dict)

    def suggest(self, trial: Any, given: Mapping[str, Any]) -> dict[str, Any]:
        """A trial's value of every parameter; `given` holds the run's own values (what `scales_given` scales)."""
        return {name: parameter.suggest(trial, name, given.get(name)) for name, parameter in self.parameters.items()}


_SHARED = {
    "num_train_epochs": Parameter(choices=(0.5, 1.0, 2.0), scales_given=True),
    # A float below 1 is a fraction of the training steps (TrainingArguments.warmup_steps).
    "warmup_steps": Parameter(0.0, 0.2),
    "weight_decay": Parameter(0.0, 0.1),
}
SEARCH_SPACES: Registry[SearchSpace] = Registry("search space", "--strategy")
SEARCH_SPACES.register(SearchSpace("full", {"learning_rate": Parameter(1e-5, 2e-4, log=True), **_SHARED}))
SEARCH_SPACES.register(
    SearchSpace(
        "lora",
        {"learning_rate": Parameter(1e-4, 5e-3, log=True), **_SHARED, "lora_r": Parameter(choices=(4, 8, 16))},
    )
)

_LORA_FIELDS = frozenset(f.name for f in dataclasses.fields(LoraArguments))


@dataclass
class SearchResult:
    """The best trial of a search: its values, its validation score, how many trials ran and how long they took (not
    in the run's `train_runtime`)."""

    objective: str  # the metrics key it was chosen by, e.g. `eval_accuracy`
    objective_value: float
    values: dict[str, Any]
    trials: int
    runtime: float = 0.0

    def apply(self, training_args: TrainingArguments, lora_args: LoraArguments) -> LoraArguments:
        """Set the chosen `TrainingArguments` values in place; returns `lora_args` with the chosen LoRA values."""
        for name, value in self.values.items():
            if name not in _LORA_FIELDS:
                setattr(training_args, name, value)
        return dataclasses.replace(lora_args, **{k: v for k, v in self.values.items() if k in _LORA_FIELDS})

    def metrics(self) -> dict[str, Any]:
        """The flat keys of `all_results.json` (`hp_search_trials`, `hp_search_best_learning_rate`, ...)."""
        return {
            f"{HP_SEARCH_PREFIX}trials": self.trials,
            f"{HP_SEARCH_PREFIX}objective": self.objective,
            f"{HP_SEARCH_PREFIX}objective_value": self.objective_value,
            f"{HP_SEARCH_PREFIX}runtime": self.runtime,
            **{f"{HP_SEARCH_PREFIX}best_{name}": value for name, value in self.values.items()},
        }

    def save(self, output_dir: str) -> None:
        write_json_atomic(Path(output_dir) / SEARCH_FILE, dataclasses.asdict(self))

    @classmethod
    def load(cls, output_dir: str) -> Optional[SearchResult]:
        path = Path(output_dir) / SEARCH_FILE
        return cls(**json.loads(path.read_text())) if path.is_file() else None


def _trial_arguments(training_args: TrainingArguments, folder: str) -> TrainingArguments:
    """The run's arguments for a trial: no checkpoint, no tracker, no push, in `folder` (trials set their values
    on this copy, never on the run's own)."""
    from transformers.trainer_utils import SaveStrategy

    args = copy.deepcopy(training_args)
    args.output_dir = folder
    args.save_strategy = SaveStrategy.NO
    args.load_best_model_at_end = False
    args.report_to = []
    args.push_to_hub = False
    args.warmup_steps = float(args.warmup_steps)  # Trainer casts a trial's value to the type of the field's value
    return args


def _search(
    n_trials: int,
    space: SearchSpace,
    *,
    task: str,
    model: nn.Module,
    prepare: Callable[[nn.Module, LoraArguments], nn.Module],
    training_args: TrainingArguments,
    lora_args: LoraArguments,
    trainer_kwargs: dict[str, Any],
) -> SearchResult:
    import optuna

    start = time.perf_counter()
    entry = TASKS.get(task)
    objective = f"eval_{entry.headline_metric}"
    given = {name: getattr(training_args, name, None) for name in space.parameters}
    scores: dict[int, float] = {}  # each trial's last validation score
    current: list[int] = []  # the trial whose model was made last

    def hp_space(trial) -> dict[str, Any]:
        values = space.suggest(trial, given)
        return {name: value for name, value in values.items() if name not in _LORA_FIELDS}  # Trainer sets these

    def model_init(trial) -> nn.Module:
        chosen = {k: v for k, v in (trial.params if trial is not None else {}).items() if k in _LORA_FIELDS}
        if trial is not None:
            current.append(trial.number)
        return prepare(copy.deepcopy(model), dataclasses.replace(lora_args, **chosen))

    def compute_objective(metrics: dict[str, float]) -> float:
        scores[current[-1]] = metrics[objective]
        return metrics[objective]

    with tempfile.TemporaryDirectory(prefix="hp_search-") as folder:
        trainer = TransferTrainer(model_init=model_init, args=_trial_arguments(training_args, folder), **trainer_kwargs)
        best = trainer.hyperparameter_search(
            hp_space=hp_space,
            compute_objective=compute_objective,
            n_trials=n_trials,
            direction=entry.headline_direction,
            backend="optuna",
            sampler=optuna.samplers.TPESampler(seed=training_args.seed),
            pruner=optuna.pruners.NopPruner(),  # every trial trains its whole schedule
        )
    return SearchResult(
        objective, float(best.objective), dict(best.hyperparameters), len(scores), time.perf_counter() - start
    )


def choose_hyperparameters(
    n_trials: int,
    method: str,
    *,
    task: str,
    model: nn.Module,
    prepare: Callable[[nn.Module, LoraArguments], nn.Module],
    training_args: TrainingArguments,
    lora_args: LoraArguments,
    trainer_kwargs: dict[str, Any],
    resuming: bool = False,
) -> SearchResult:
    """Search `n_trials` trials of `method`'s space and return the best (saved in the output folder); a resumed run
    (`resuming`) reads back the choice its checkpoints were trained with instead.

    Args:
        method: the run's fine-tuning method (`full`, `lora`), a name of `SEARCH_SPACES`.
        task: the task of the labels (its headline metric is the objective).
        model: the model right before fine-tuning; each trial trains `prepare(copy, lora_args)` of a copy.
        prepare: what makes the model ready to fine-tune (LoRA adapters of the given arguments' rank, the
            regression head on standardised targets): the run's own step, so trials train what the run trains.
        training_args: the run's arguments; not changed here (`SearchResult.apply` sets the choice).
        trainer_kwargs: the rest of the run's `TransferTrainer` arguments (data, collator, metrics, ...).
    """
    saved = SearchResult.load(training_args.output_dir) if resuming else None
    if saved is not None:
        logger.info(f"Resuming: the values the search chose before, from {SEARCH_FILE}: {saved.values}")
        return saved
    result = _search(
        n_trials,
        SEARCH_SPACES.get(method),
        task=task,
        model=model,
        prepare=prepare,
        training_args=training_args,
        lora_args=lora_args,
        trainer_kwargs=trainer_kwargs,
    )
    logger.info(
        f"Hyperparameter search: {result.trials} trials; best {result.objective} {result.objective_value:.4f} with "
        f"{result.values}"
    )
    if training_args.should_save:
        result.save(training_args.output_dir)
    set_seed(training_args.seed)  # the run trains as it would have without the trials before it
    return result
