"""What the user sets to choose and tune a transfer strategy."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Literal, Optional

from ..constants import DEFAULT_L2_GRID
from ..errors import ConfigError
from ..models.pooling_modes import CLASSIFIER_POOLINGS, HEAD_POOLING
from ..tasks import TASK_CHOICES, TASKS
from .strategies import FINETUNE_METHODS, STRATEGIES, Strategy

__all__ = ["STRATEGIES", "CLASSIFIER_POOLINGS", "LoraArguments", "SearchArguments", "TransferArguments"]


@dataclass
class LoraArguments:
    """The LoRA adapters (peft), for every recipe that can train them: finetune and domain_adapt (`--strategy
    lora`), maml (`--adapt lora`).

    Args:
        lora_r (`int`): the adapters' rank.
        lora_alpha (`int`): scale numerator; the update is scaled by `lora_alpha / lora_r`.
        lora_dropout (`float`): dropout on the adapters' input.
        lora_target_modules (`list[str]`, *optional*): module names to adapt; by default chosen per
            architecture (query/value for BERT- and ViT-like, qkv for timm ViTs, 1x1 convs for CNNs).
    """

    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha; the update is scaled by alpha / r."})
    lora_dropout: float = field(default=0.1, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: Optional[list[str]] = field(
        default=None,
        metadata={
            "help": "Names of modules to adapt, e.g. `query value`. Default: chosen per architecture "
            "(query/value for BERT/ViT, qkv for timm ViTs, pointwise 1x1 convs for timm CNNs)."
        },
    )

    def __post_init__(self) -> None:
        if self.lora_r <= 0 or self.lora_alpha <= 0:
            raise ConfigError(f"--lora_r ({self.lora_r}) and --lora_alpha ({self.lora_alpha}) must be positive.")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ConfigError(f"--lora_dropout {self.lora_dropout} must be in [0, 1).")


@dataclass
class SearchArguments:
    """The opt-in hyperparameter search of finetune's `Trainer` stage (`hf_transfer.finetuning.search`).

    Args:
        hp_search (`int`): optuna trials, each a short fine-tuning run scored on the validation split, before the
            run itself trains with the best trial's values; 0 (default) searches nothing.
    """

    hp_search: int = field(
        default=0,
        metadata={
            "help": "Search the learning rate, epochs, warmup, weight decay (and the LoRA rank) with this many optuna "
            "trials (Trainer.hyperparameter_search), each scored on the validation split by the task's headline "
            "metric; the run then trains with the best trial's values. 0 (default): no search."
        },
    )

    def __post_init__(self) -> None:
        if self.hp_search < 0:
            raise ConfigError(f"--hp_search {self.hp_search}: give the number of trials (e.g. 8), or 0 for no search.")

    def check_run(self, strategy: Strategy, world_size: int) -> None:
        """A `ConfigError` for a search the run cannot make: no `Trainer` stage to search, or several processes."""
        if not self.hp_search:
            return
        if not strategy.finetunes:
            raise ConfigError(
                f"--hp_search searches fine-tuning, and --strategy {strategy.name} has no fine-tuning stage (its probe "
                "chooses its L2 strength itself): use --strategy full, lora or lp_ft, or drop --hp_search."
            )
        if world_size > 1:
            raise ConfigError(
                f"--hp_search runs its trials in one process, not {world_size}: launch without --num_processes."
            )
        if importlib.util.find_spec("optuna") is None:
            raise ConfigError("--hp_search needs optuna: pip install 'hf-transfer-toolkit[search]' (or optuna).")


@dataclass
class TransferArguments:
    """How to transfer the backbone to the new task.

    Args:
        task (`str`): `single_label`, `multi_label` (BCE per label, a one-vs-rest probe, decision thresholds chosen on
            validation and saved), `regression` (a numeric target: MSE on standardised targets, a head that
            predicts raw units, a ridge probe), `token_classification` (a tag per word: AutoModelForTokenClassification,
            seqeval scores), or `auto` (`hf_transfer.data.targets.resolve_task`).
        strategy (`str`): a name of `hf_transfer.finetuning.strategies.STRATEGIES`: `linear_probe` fits a logistic
            regression on cached frozen features; `full` fine-tunes every weight; `lora` trains LoRA
            adapters through peft plus the new head; `lp_ft` probes first and starts fine-tuning from
            the probe's head (Kumar et al. 2022, https://arxiv.org/abs/2202.10054).
        lp_ft_finetune (`Literal["full", "lora"]`): the fine-tuning stage of `lp_ft`.
        max_seq_length (`int`): tokens per text after truncation.
        image_size (`int`, *optional*): square input size for images; default: the model's own.
        head_learning_rate (`float`, *optional*): learning rate of the new head in `full` / `lora`;
            default: `--learning_rate`.
        layer_decay (`float`): layer-wise learning-rate decay; layer l of L gets
            `lr * layer_decay ** (L + 1 - l)`. 1.0 turns it off.
        merge_lora (`bool`): also write a merged plain model to `<output_dir>/merged`.
        push_merged (`bool`): with `--merge_lora` and `--push_to_hub`, also push it to `<hub_model_id>-merged`.
        probe_l2_grid (`list[float]`, *optional*): L2 strengths swept by the probe.
        probe_max_iter (`int`): L-BFGS iterations per L2 value.
        probe_folds (`int`): folds of the cross-validation that chooses the probe's L2 when there is no validation
            split (the probe-only strategies keep every training row when the data has none: no held-out shots).
        feature_batch_size (`int`): batch size of the frozen feature extraction.
        feature_cache_dir (`str`, *optional*): where extracted features are cached.
        pooling (`str`, *optional*): what the text classifier reads. `head`: the stock transformers head (BERT's
            pooler, RoBERTa's first token). A pooling mode (`mean`, `cls`, `max`, ...): `AutoModel` + that pooling +
            a Linear, saved in sentence-transformers' format (`hf_transfer.models.pooled_classifier`). Default: the
            pooling a sentence-transformers checkpoint ships (`modules.json`) for the strategies that start from
            frozen features (`linear_probe`, `lp_ft`) and in domain adaptation, `head` for `full` and `lora`
            fine-tuning (`resolve_pooling` says why).
    """

    task: str = field(
        default="auto",
        metadata={
            "help": "What the data holds: "
            + "; ".join(f"{task.name} ({task.description})" for task in TASKS.entries())
            + ". Default auto: token_classification for word lists (a .conll file), multi_label for real label lists "
            "(names joined by --label_separator stop and ask for --task multi_label or single_label), regression for "
            "dot-format numbers that are not all whole (with a warning), else single_label (labels as written)."
        },
    )
    strategy: str = field(
        default="lora",
        metadata={"help": " ".join(f"{entry.name}: {entry.description}." for entry in STRATEGIES.entries())},
    )
    lp_ft_finetune: Literal["full", "lora"] = field(
        default="full", metadata={"help": "Fine-tuning stage used by --strategy lp_ft: full or lora."}
    )
    max_seq_length: int = field(
        default=128, metadata={"help": "Maximum tokens per text; longer texts are truncated (text models only)."}
    )
    image_size: Optional[int] = field(
        default=None,
        metadata={
            "help": "Resize images to this square size (vision models only). Default: the model's own input size. "
            "Small images such as Fashion-MNIST train several times faster at e.g. 112 than at 224."
        },
    )
    head_learning_rate: Optional[float] = field(
        default=None,
        metadata={
            "help": "Learning rate of the new classification head (full, lora, lp_ft). Default: --learning_rate."
        },
    )
    layer_decay: float = field(
        default=1.0,
        metadata={
            "help": "Layer-wise learning-rate decay in (0, 1]: each layer below the top gets this factor once more. "
            "1.0 (default) disables it."
        },
    )
    merge_lora: bool = field(
        default=False, metadata={"help": "After LoRA training, also save a merged plain model in <output_dir>/merged."}
    )
    push_merged: bool = field(
        default=False,
        metadata={
            "help": "With --merge_lora and --push_to_hub: also push the merged model to `<hub_model_id>-merged`."
        },
    )
    probe_l2_grid: Optional[list[float]] = field(
        default=None,
        metadata={"help": f"L2 strengths swept by the linear probe. Default: {list(DEFAULT_L2_GRID)}."},
    )
    probe_max_iter: int = field(default=200, metadata={"help": "L-BFGS iterations per L2 value of the probe."})
    probe_folds: int = field(
        default=5,
        metadata={
            "help": "Folds of the cross-validation that chooses the probe's L2 when the data has no validation split "
            "(then every training row is kept, and the probe refitted on all of them). Default 5."
        },
    )
    feature_batch_size: int = field(default=64, metadata={"help": "Batch size of frozen feature extraction."})
    feature_cache_dir: Optional[str] = field(
        default=None,
        metadata={"help": "Where extracted features are cached. Default: ~/.cache/hf_transfer/features."},
    )
    pooling: Optional[str] = field(
        default=None,
        metadata={
            "help": "Text classifier input: head (the stock transformers head) or a pooling mode "
            f"({', '.join(CLASSIFIER_POOLINGS[1:])}; saved in sentence-transformers' format). Default: the pooling "
            "a sentence-transformers checkpoint ships for linear_probe, lp_ft and domain_adapt, head for full and lora "
            "fine-tuning."
        },
    )

    def __post_init__(self) -> None:
        if self.task not in TASK_CHOICES:
            raise ConfigError(f"--task {self.task!r} is not one of {', '.join(TASK_CHOICES)}.")
        if self.task in TASKS and TASKS.get(self.task).recipe != "finetune":
            raise ConfigError(
                f"--task {self.task} is trained by recipes/{TASKS.get(self.task).recipe}.py, not finetune.py: run "
                f"python recipes/{TASKS.get(self.task).recipe}.py (see its --help)."
            )
        STRATEGIES.check(self.strategy)
        if self.lp_ft_finetune not in FINETUNE_METHODS:
            raise ConfigError(f"--lp_ft_finetune {self.lp_ft_finetune!r} must be `full` or `lora`.")
        if not 0.0 < self.layer_decay <= 1.0:
            raise ConfigError(f"--layer_decay {self.layer_decay} must be in (0, 1]; use 1.0 to disable it.")
        if self.head_learning_rate is not None and self.head_learning_rate <= 0:
            raise ConfigError(f"--head_learning_rate {self.head_learning_rate} must be positive.")
        if self.image_size is not None and self.image_size < 8:
            raise ConfigError(f"--image_size {self.image_size} is too small; use e.g. 112 or 224.")
        if self.max_seq_length <= 0:
            raise ConfigError(f"--max_seq_length {self.max_seq_length} must be positive.")
        if self.probe_l2_grid is not None:
            if not self.probe_l2_grid or any(v < 0 for v in self.probe_l2_grid):
                raise ConfigError(f"--probe_l2_grid {self.probe_l2_grid} must be non-empty and non-negative.")
        if self.probe_folds < 2:
            raise ConfigError(f"--probe_folds must be at least 2 (cross-validation folds); got {self.probe_folds}.")
        if self.probe_max_iter <= 0 or self.feature_batch_size <= 0:
            raise ConfigError("--probe_max_iter and --feature_batch_size must be positive.")
        if self.pooling is not None and self.pooling not in CLASSIFIER_POOLINGS:
            raise ConfigError(f"--pooling {self.pooling!r} is not one of {', '.join(CLASSIFIER_POOLINGS)}.")
        if self.merge_lora and not self.trains_lora:
            raise ConfigError(
                "--merge_lora only applies to LoRA training: use --strategy lora (or lp_ft with --lp_ft_finetune lora)."
            )
        if self.push_merged and not self.merge_lora:
            raise ConfigError("--push_merged needs a merged model: add --merge_lora true to the LoRA run.")

    @property
    def classifier_pooling(self) -> str:
        """`--pooling`, or finetune's default (`resolve_pooling`)."""
        return self.resolve_pooling()

    def resolve_pooling(self, *, aligns_features: bool = False) -> str:
        """`--pooling`, or its default: `auto` (the checkpoint's sentence-transformers pooling) where the
        pretrained embedding is used as it is: the strategies that start from frozen features, and domain
        adaptation (`aligns_features`), which aligns the embedding across domains. `head` for full and LoRA
        fine-tuning: there the trained pooling gains little for full (+0.2 / 0 points) and +3.5 / +0.8 for LoRA
        (tweets / BBC, 3 seeds, benchmarks/RESULTS.md), but it would save LoRA merged, without its adapter."""
        if self.pooling is not None:
            return self.pooling
        return "auto" if aligns_features or self.strategy_entry.starts_from_frozen_features else HEAD_POOLING

    @property
    def strategy_entry(self) -> Strategy:
        """The `STRATEGIES` entry of `--strategy`: which stages the run has."""
        return STRATEGIES.get(self.strategy)

    def check_task(self, task: str) -> None:
        """Refuse a strategy the data's task cannot run (pair training needs rows with classes to pair by)."""
        if self.strategy_entry.trains_on_pairs and not TASKS.get(task).classifies_rows:
            raise ConfigError(
                f"--strategy {self.strategy} pairs rows by their classes, and {task} rows have none (a number or a "
                "tag per word). Use --strategy linear_probe, full, lora or lp_ft."
            )

    @property
    def trains_lora(self) -> bool:
        """Its fine-tuning stage trains LoRA adapters (peft) rather than every weight."""
        return self.finetune_method == "lora"

    @property
    def finetune_method(self) -> Optional[str]:
        """`full`, `lora`, or None for a probe-only run."""
        entry = self.strategy_entry
        return getattr(self, entry.finetune_method_flag) if entry.finetune_method_flag else entry.finetune_method
