"""What the user sets to learn from unlabelled rows (`recipes/finetune.py`): imports no implementation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..constants import SEMI_SUPERVISED_PREFIX
from ..errors import ConfigError
from ..tasks import TASKS

__all__ = ["SemiSupervisedArguments"]


@dataclass
class SemiSupervisedArguments:
    """The unlabelled pool and how the run learns from it: the probe strategies self-train on cached features, the
    fine-tuning strategies train FixMatch-style (`Strategy.semi_supervised` says which).

    Args:
        unlabelled_file (`str`, *optional*): unlabelled rows as `.csv`, `.tsv`, `.json`, `.jsonl` or `.parquet`, with
            the same input column as train (a label column, if any, is ignored).
        unlabelled_dir (`str`, *optional*): a folder of unlabelled images (any layout; sub-folder names are ignored).
        unlabelled_split_percentage (`float`, *optional*): the share of train (in (0, 1)) set aside, labels dropped,
            as the pool, before `--train_samples_per_class` / `--max_train_samples` pick the labelled rows: for users
            with one labelled file and for benchmarks (the pool's hidden labels then score the pseudo-labels).
        max_unlabelled_samples (`int`, *optional*): a seeded subset of the pool of this many rows.
        pseudo_label_threshold (`float`): the confidence a fully learned class needs (FixMatch's tau).
        pseudo_label_min_threshold (`float`): the lowest threshold any class gets while the per-class thresholds
            adapt (FlexMatch); equal to `pseudo_label_threshold` gives one fixed threshold.
        self_training_rounds (`int`): pseudo-label-and-refit rounds of the probe; 0 keeps the probe of the labelled
            rows (the same rows as with the pool: the baseline a self-trained run is compared with).
        distribution_alignment (`bool`): align single-label pool predictions to the labelled class distribution
            before thresholding (ReMixMatch), which keeps one class from taking over the pseudo-labels.
        balance_pseudo_labels (`bool`): probe self-training, single-label: keep pseudo-labelled rows in the labelled
            rows' class proportions (each class its most confident ones, CBST), so a refit does not forget the classes
            the probe is unsure of.
        unlabelled_weight (`float`): FixMatch's lambda_u, the weight of the unlabelled loss.
        unlabelled_ratio (`int`): FixMatch's mu, unlabelled rows per labelled row in a batch.
        strong_mask_probability (`float`): text's strong view: the share of tokens masked.
    """

    unlabelled_file: Optional[str] = field(
        default=None,
        metadata={
            "help": "Unlabelled rows (.csv, .tsv, .json, .jsonl, .parquet) with the same input column as train; a "
            "label column, if any, is ignored. The probe strategies self-train on them, the fine-tuning ones train "
            "FixMatch-style."
        },
    )
    unlabelled_dir: Optional[str] = field(
        default=None, metadata={"help": "A folder of unlabelled images (any layout; folder names are ignored)."}
    )
    unlabelled_split_percentage: Optional[float] = field(
        default=None,
        metadata={
            "help": "Set this share of train (strictly between 0 and 1) aside as the unlabelled pool, labels dropped, "
            "before --train_samples_per_class / --max_train_samples pick the labelled rows. Its hidden labels then "
            "score the pseudo-labels (pseudo_label_accuracy)."
        },
    )
    max_unlabelled_samples: Optional[int] = field(
        default=None, metadata={"help": "Use a seeded subset of this many unlabelled rows. All when omitted."}
    )
    pseudo_label_threshold: float = field(
        default=0.95,
        metadata={"help": "Confidence a fully learned class needs for a pseudo-label (FixMatch's tau, 0.95)."},
    )
    pseudo_label_min_threshold: float = field(
        default=0.7,
        metadata={
            "help": "Floor of the per-class thresholds, which start low for classes the model has not learned yet "
            "(FlexMatch). Set it to --pseudo_label_threshold for one fixed threshold."
        },
    )
    self_training_rounds: int = field(
        default=3,
        metadata={
            "help": "Probe self-training: rounds of pseudo-labelling the pool and refitting. 0 keeps the probe of the "
            "labelled rows (with --unlabelled_split_percentage: the same labelled rows, a baseline)."
        },
    )
    distribution_alignment: bool = field(
        default=True,
        metadata={
            "help": "Align single-label predictions on the pool to the labelled class distribution before "
            "thresholding (ReMixMatch): without it one class can take over the pseudo-labels round by round."
        },
    )
    balance_pseudo_labels: bool = field(
        default=True,
        metadata={
            "help": "Probe self-training (single-label): keep the pseudo-labelled rows in the labelled rows' class "
            "proportions, each class its most confident ones, so a refit does not forget the classes the probe is "
            "unsure of. None are kept while a class has no confident row."
        },
    )
    unlabelled_weight: float = field(
        default=1.0, metadata={"help": "FixMatch: weight of the unlabelled consistency loss (lambda_u)."}
    )
    unlabelled_ratio: int = field(
        default=2,
        metadata={"help": "FixMatch: unlabelled rows per labelled row in a batch (mu; the paper uses 7 on GPUs)."},
    )
    strong_mask_probability: float = field(
        default=0.3,
        metadata={"help": "FixMatch on text: share of tokens masked in the strong view (the weak view is dropout)."},
    )

    def __post_init__(self) -> None:
        sources = [
            flag
            for flag, value in (
                ("--unlabelled_file", self.unlabelled_file),
                ("--unlabelled_dir", self.unlabelled_dir),
                ("--unlabelled_split_percentage", self.unlabelled_split_percentage),
            )
            if value is not None
        ]
        if len(sources) > 1:
            raise ConfigError(f"Give one unlabelled pool, not {' and '.join(sources)}.")
        if self.unlabelled_split_percentage is not None and not 0.0 < self.unlabelled_split_percentage < 1.0:
            raise ConfigError(
                f"--unlabelled_split_percentage must lie strictly between 0 and 1; got {self.unlabelled_split_percentage}."
            )
        if self.max_unlabelled_samples is not None and self.max_unlabelled_samples <= 0:
            raise ConfigError(f"--max_unlabelled_samples must be positive; got {self.max_unlabelled_samples}.")
        if not 0.0 < self.pseudo_label_threshold <= 1.0:
            raise ConfigError(f"--pseudo_label_threshold must lie in (0, 1]; got {self.pseudo_label_threshold}.")
        if not 0.0 <= self.pseudo_label_min_threshold <= self.pseudo_label_threshold:
            raise ConfigError(
                f"--pseudo_label_min_threshold must lie in [0, --pseudo_label_threshold]; got "
                f"{self.pseudo_label_min_threshold} (threshold {self.pseudo_label_threshold})."
            )
        if self.self_training_rounds < 0:
            raise ConfigError(f"--self_training_rounds must be 0 or more; got {self.self_training_rounds}.")
        if self.unlabelled_weight < 0:
            raise ConfigError(f"--unlabelled_weight must be non-negative; got {self.unlabelled_weight}.")
        if self.unlabelled_ratio < 1:
            raise ConfigError(f"--unlabelled_ratio must be at least 1; got {self.unlabelled_ratio}.")
        if not 0.0 < self.strong_mask_probability < 1.0:
            raise ConfigError(
                f"--strong_mask_probability must lie strictly between 0 and 1; got {self.strong_mask_probability}."
            )

    @property
    def enabled(self) -> bool:
        """An unlabelled pool is given."""
        return any(v is not None for v in (self.unlabelled_file, self.unlabelled_dir, self.unlabelled_split_percentage))

    @property
    def adaptive(self) -> bool:
        """The per-class thresholds adapt (FlexMatch); a floor equal to the threshold fixes them."""
        return self.pseudo_label_min_threshold < self.pseudo_label_threshold

    def check_search(self, hp_search: int) -> None:
        """No `--hp_search` with a pool (checked before the data is read)."""
        if self.enabled and hp_search:
            raise ConfigError(
                "--hp_search trials train on the labelled rows only, so they would tune a different run than one with "
                "an unlabelled pool: drop --hp_search, or search first without the pool."
            )

    def check_run(self, strategy, task: str) -> None:
        """One line for a pool this run cannot learn from: pseudo-labels need classes (not numbers or word tags)."""
        if not self.enabled:
            return
        task_entry = TASKS.get(task)
        if not task_entry.classifies_rows:
            raise ConfigError(
                f"Learning from unlabelled rows pseudo-labels classes of rows, and {task} rows have none (a number or "
                "a tag per word). Drop --unlabelled_file / --unlabelled_dir / --unlabelled_split_percentage."
            )
        if strategy.semi_supervised is None:
            raise ConfigError(
                f"--strategy {strategy.name} cannot learn from unlabelled rows. Use linear_probe or contrastive_probe "
                "(self-training) or full, lora or lp_ft (FixMatch), or drop the unlabelled pool."
            )

    def describe(self, method, pool) -> dict:
        """The results' keys (`semi_supervised_*`) that say what the run was given and set: the method, the pool's
        source and size, the thresholds (and FixMatch's weight and ratio)."""
        out = {
            "method": method.name,
            "source": pool.source,
            "unlabelled_samples": len(pool.rows),
            "threshold": self.pseudo_label_threshold,
            "min_threshold": self.pseudo_label_min_threshold,
            "adaptive_thresholds": self.adaptive,
            "distribution_alignment": self.distribution_alignment,
        }
        if method.trains_probe:
            out.update(max_rounds=self.self_training_rounds, balanced=self.balance_pseudo_labels)
        else:
            out.update(unlabelled_weight=self.unlabelled_weight, unlabelled_ratio=self.unlabelled_ratio)
        return {f"{SEMI_SUPERVISED_PREFIX}{key}": value for key, value in out.items()}
