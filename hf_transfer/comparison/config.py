"""`CompareArguments`: the grid `hf-transfer compare` runs (the data comes as the recipes' `DataArguments`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..errors import ConfigError

__all__ = ["CompareArguments", "COMPARABLE_STRATEGIES"]

COMPARABLE_STRATEGIES = ("linear_probe", "lora", "full", "lp_ft")  # recipes/finetune.py's --strategy values


@dataclass
class CompareArguments:
    models: list[str] = field(
        default_factory=lambda: ["minilm"], metadata={"help": "Backbones to compare (aliases, Hub ids or folders)."}
    )
    strategies: list[str] = field(
        default_factory=lambda: ["linear_probe", "lora", "full"],
        metadata={"help": f"Strategies of recipes/finetune.py to compare: any of {', '.join(COMPARABLE_STRATEGIES)}."},
    )
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Seeds: one run per seed."})
    label_budgets: list[str] = field(
        default_factory=lambda: ["8", "32", "128"],
        metadata={
            "help": "Labelled training rows per class (--train_samples_per_class of each run), and `all` for every "
            "row of the train split."
        },
    )
    output_dir: Optional[str] = field(
        default=None,
        metadata={
            "help": "The comparison folder: one sub-folder per cell (finished cells are never rerun), comparison.md / "
            ".csv and the plots. Default outputs/compare-<data>."
        },
    )
    recipe_args: str = field(
        default="",
        metadata={"help": 'More flags for every run, as one string, e.g. "--num_train_epochs 3 --learning_rate 1e-4".'},
    )
    strategy_args: list[str] = field(
        default_factory=list,
        metadata={
            "help": 'More flags for one strategy\'s runs, as `STRATEGY: FLAGS`, e.g. "lora: --learning_rate 5e-4" '
            '"full: --learning_rate 5e-5" (strategies train best at different rates). They follow --recipe_args.'
        },
    )
    parallel: int = field(
        default=1, metadata={"help": "Cells run at once; the machine's cores are shared between them."}
    )

    push_to_hub: bool = field(
        default=False, metadata={"help": "Push the comparison (card, table, cells, plots) as a Hub dataset repo."}
    )
    hub_repo_id: Optional[str] = field(
        default=None, metadata={"help": "The dataset repository, e.g. `your-name/compare-tweets` (with --push_to_hub)."}
    )
    hub_private: bool = field(default=False, metadata={"help": "Create the repository as private."})

    def __post_init__(self) -> None:
        unknown = [s for s in self.strategies if s not in COMPARABLE_STRATEGIES]
        if unknown:
            raise ConfigError(
                f"--strategies {' '.join(unknown)}: unknown; choose from {', '.join(COMPARABLE_STRATEGIES)}."
            )
        for budget in self.label_budgets:
            if budget != "all" and not (budget.isdigit() and int(budget) > 0):
                raise ConfigError(f"--label_budgets {budget}: use positive integers (rows per class) or `all`.")
        if not self.models or not self.strategies or not self.seeds or not self.label_budgets:
            raise ConfigError("--models, --strategies, --seeds and --label_budgets each need at least one value.")
        if self.push_to_hub and not self.hub_repo_id:
            raise ConfigError("--push_to_hub true needs --hub_repo_id (e.g. your-name/compare-tweets).")
        if self.parallel < 1:
            raise ConfigError(f"--parallel must be at least 1; got {self.parallel}.")
        for entry in self.strategy_args:
            strategy, colon, _ = entry.partition(":")
            if not colon or strategy.strip() not in COMPARABLE_STRATEGIES:
                raise ConfigError(
                    f"--strategy_args {entry!r}: write STRATEGY: FLAGS with STRATEGY one of "
                    f'{", ".join(COMPARABLE_STRATEGIES)}, e.g. "lora: --learning_rate 5e-4".'
                )
        per_strategy = " ".join(entry.partition(":")[2] for entry in self.strategy_args)
        for where, flags in (("--recipe_args", self.recipe_args), ("--strategy_args", per_strategy)):
            for flag in ("--output_dir", "--seed", "--strategy", "--model_name_or_path", "--train_samples_per_class"):
                if flag in flags.split():
                    raise ConfigError(f"{where} sets {flag}, which the comparison sets per cell: remove it.")

        tokens = " ".join([self.recipe_args, per_strategy]).replace("=", " ").split()
        if "--task" in tokens and tokens[tokens.index("--task") + 1 :][:1] not in (["single_label"], ["auto"]):
            raise ConfigError(
                "hf-transfer compare scores single-label classification (accuracy, macro-F1, label budgets per "
                "class); for multi-label, regression or NER runs use recipes/finetune.py --task directly."
            )

    def flags_for(self, strategy: str) -> list[str]:
        """--recipe_args, then this strategy's --strategy_args, as recipe flags."""
        import shlex

        flags = shlex.split(self.recipe_args)
        for entry in self.strategy_args:
            name, _, more = entry.partition(":")
            if name.strip() == strategy:
                flags += shlex.split(more)
        return flags
