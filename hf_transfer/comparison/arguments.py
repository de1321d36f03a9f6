"""`CompareArguments`: the grid `hf-transfer compare` runs (the data comes as the compared recipe's data arguments).

`--task` picks the recipe the cells run (`compared.COMPARED_RECIPES`, by the task entry's `recipe`): recipes/finetune.py
for classification (the default), recipes/detect.py for `object_detection`. Flags carry the recipe's names where they
mean the same thing, with several values where the grid takes several: `--model_name_or_path` (also `--models`,
`--backbone`), `--strategy` / `--strategies`, `--seed` / `--seeds`, the budget (`--train_samples_per_class`, or
detect's `--max_train_samples`; also `--label_budgets`), `--hub_private_repo` / `--hub_private`, and the data flags.
The arms `--selection` and `--unlabelled` (`arms`) and `--pool_samples` are compare's own: the cells get their rows as
a `--train_rows_file`. An arm the recipe does not have is refused.

`--recipe_args` and `--strategy_args` are read by the recipe's own parser (`recipe_flag_values`), so every spelling
of a flag (`--strategy=lora`, `--model-name-or-path x`, an abbreviation argparse expands) is recognised.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any, Optional

from ..errors import ConfigError
from ..finetuning.recipe_arguments import finetune_argument_classes
from ..finetuning.strategies import STRATEGIES
from ..tasks import AUTO_TASK, TASK_CHOICES, TASKS
from .arms import (
    BACKBONE_INITS,
    DEFAULT_BACKBONE_INIT,
    DEFAULT_HEAD_INIT,
    DEFAULT_SELECTION,
    DEFAULT_UNLABELLED,
    HEAD_INITS,
    LABELLED_ROW_CHOICES,
    UNLABELLED_POOLS,
)
from .compared import AUTO_RECIPE, COMPARED_RECIPES, ComparedRecipe, compared_recipe_for

__all__ = ["CompareArguments", "COMPARABLE_STRATEGIES", "CELL_FLAGS", "finetune_argument_classes", "recipe_flag_values"]

COMPARABLE_STRATEGIES: tuple[str, ...] = STRATEGIES.names()  # recipes/finetune.py's --strategy values

# What the comparison sets per finetune cell (`grid.Cell.recipe_flags`, the cell's folder): argument name -> compare's
# flag (each compared recipe's: `ComparedRecipe.cell_flags`).
CELL_FLAGS = COMPARED_RECIPES.get(AUTO_RECIPE).cell_flags
# --task values of the finetune runs compare can score: accuracy, macro-F1 and label budgets per class need one class
# per row.
SCORED_TASKS = COMPARED_RECIPES.get(AUTO_RECIPE).tasks


class _FlagsParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print the usage and exit
        raise ConfigError(message)


@lru_cache(maxsize=None)
def _recipe_parser(recipe: str) -> argparse.ArgumentParser:
    """The recipe's parser with nothing required and no defaults: parsing flags yields only what they set."""
    from transformers import HfArgumentParser

    class Parser(_FlagsParser, HfArgumentParser):
        pass

    parser = Parser(COMPARED_RECIPES.get(recipe).argument_classes(), add_help=False)
    for action in parser._actions:
        action.default, action.required = argparse.SUPPRESS, False
    return parser


def recipe_flag_values(flags: list[str], where: str, recipe: str = AUTO_RECIPE) -> dict[str, Any]:
    """The arguments that `flags` set, by name, as the recipe's parser reads them (recipes/finetune.py's unless
    `recipe` names another compared recipe): `--seed 3`, `--seed=3` and a prefix argparse expands all set `seed`. A
    flag the recipe does not know is an error here, before any run.
    """
    parser = _recipe_parser(recipe)
    script = COMPARED_RECIPES.get(recipe).script
    try:
        values, unknown = parser.parse_known_args(flags)
    except ConfigError as err:
        raise ConfigError(f"{where} {' '.join(flags)!r}: {err}") from None
    stray = [token for token in unknown if token.startswith("-")]
    if unknown:
        what = f"{stray[0]} is not a flag of recipes/{script}" if stray else f"{unknown[0]!r} follows no flag"
        raise ConfigError(f"{where} {' '.join(flags)!r}: {what}; see python recipes/{script} --help.")
    return vars(values)


def _check_spelled_in_full(flags: list[str], where: str, recipe: str) -> None:
    """The recipe takes each flag by its full name (`hf_transfer.recipe.arguments`): an abbreviation argparse would
    expand stops here, not in the first cell."""
    known = _recipe_parser(recipe)._option_string_actions
    for token in flags:
        name = token.split("=", 1)[0]
        if token.startswith("--") and " " not in token and name not in known:
            raise ConfigError(
                f"{where}: {name} is not a flag of recipes/{COMPARED_RECIPES.get(recipe).script}; write flags in full."
            )


def _unscored_task(task: str) -> str:
    """The line for a --task no compared recipe scores."""
    scored = " and ".join(recipe.what for recipe in COMPARED_RECIPES.entries())
    return (
        f"hf-transfer compare scores {scored}, not --task {task}; run recipes/{TASKS.get(task).recipe}.py --task "
        f"{task} directly for it."
    )


@dataclass
class CompareArguments:
    task: str = field(
        default=AUTO_TASK,
        metadata={
            "help": "What the cells train, which picks the recipe they run: "
            + "; ".join(
                f"{recipe.what}: recipes/{recipe.script} (--task {' / '.join(recipe.tasks)})"
                for recipe in COMPARED_RECIPES.entries()
            )
            + ". Default auto: classification, the task read from the data."
        },
    )
    model_name_or_path: Optional[list[str]] = field(
        default=None,
        metadata={
            "aliases": ["--models", "--backbone"],
            "help": "Backbones to compare (the recipe's flag with several values; --models and --backbone are the "
            "same flag): aliases, Hub ids or folders; detection cells get them as recipes/detect.py's --backbone. "
            "Default: "
            + "; ".join(f"{' '.join(r.default_models)} ({r.what})" for r in COMPARED_RECIPES.entries())
            + ".",
        },
    )
    strategies: Optional[list[str]] = field(
        default=None,
        metadata={
            "aliases": ["--strategy"],
            "help": "Strategies to compare (the recipe's --strategy, several values; its --help lists them): "
            + "; ".join(
                f"recipes/{r.script}, default {' '.join(r.default_strategies)}" for r in COMPARED_RECIPES.entries()
            )
            + ".",
        },
    )
    seeds: list[int] = field(
        default_factory=lambda: [0, 1, 2],
        metadata={
            "aliases": ["--seed"],
            "help": "Seeds (the recipe's --seed, several values): one run per seed; the seed also draws the run's "
            "labelled rows.",
        },
    )
    label_budgets: Optional[list[str]] = field(
        default=None,
        metadata={
            "aliases": ["--train_samples_per_class", "--train-samples-per-class"],
            "help": "The labelled data each cell has, several values, and `all` for the whole train split: "
            + "; ".join(
                f"{r.what}: {r.budget_unit} (recipes/{r.script}'s --{r.budget_argument}, default "
                f"{' '.join(r.default_budgets)})"
                for r in COMPARED_RECIPES.entries()
            )
            + ". A class (or a split) with fewer gives all it has; the table says what each cell really had.",
        },
    )
    selection: list[str] = field(
        default_factory=lambda: [DEFAULT_SELECTION],
        metadata={
            "help": "How each budget's labelled rows are chosen, one curve per value: `random` (default: a seeded "
            "draw per class) or a strategy of hf-transfer select ("
            + ", ".join(n for n in LABELLED_ROW_CHOICES.names() if n != DEFAULT_SELECTION)
            + "), which picks budget x classes rows from the pool's features with the labels hidden, revealed for "
            "the picked rows only, in rounds from the smallest budget up (a simulation of labelling)."
        },
    )
    unlabelled: list[str] = field(
        default_factory=lambda: [DEFAULT_UNLABELLED],
        metadata={
            "help": "The unlabelled pool each cell gets, one curve per value: `none` (default) or `rest`: the pool "
            "rows not labelled for the cell, labels removed (the probe self-trains on them, fine-tuning trains "
            "FixMatch-style)."
        },
    )
    head_init: list[str] = field(
        default_factory=lambda: [DEFAULT_HEAD_INIT],
        metadata={
            "help": "How each cell's new head starts, one curve per value (the recipe's --head_init): "
            + "; ".join(f"{e.name}: {e.description}" for e in HEAD_INITS.entries())
            + ". With text, --model_name_or_path is the aligned run's vision_tower and the strategies fine-tune."
        },
    )
    head_init_model: Optional[str] = field(
        default=None, metadata={"help": "With --head_init text: the output folder of recipes/align.py."}
    )
    backbone_init: list[str] = field(
        default_factory=lambda: [DEFAULT_BACKBONE_INIT],
        metadata={
            "help": "How each cell's backbone starts, one curve per value (object detection: recipes/detect.py's "
            "--random_init): " + "; ".join(f"{e.name}: {e.description}" for e in BACKBONE_INITS.entries()) + "."
        },
    )
    pool_samples: Optional[int] = field(
        default=None,
        metadata={
            "help": "Draw every cell's rows from a seeded, class-stratified subset of this many train rows (the pool: "
            "what `--selection` reads features of and `--unlabelled rest` hands out). Default: the whole train split."
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
    hp_search: int = field(
        default=0,
        metadata={
            "help": "The recipe's --hp_search for every cell of a strategy that fine-tunes (not linear_probe's): "
            "each such run first searches its learning rate, epochs, warmup, weight decay (and LoRA rank) with this "
            "many optuna trials on the validation split. 0 (default): no search."
        },
    )

    push_to_hub: bool = field(
        default=False, metadata={"help": "Push the comparison (card, table, cells, plots) as a Hub dataset repo."}
    )
    hub_repo_id: Optional[str] = field(
        default=None, metadata={"help": "The dataset repository, e.g. `your-name/compare-tweets` (with --push_to_hub)."}
    )
    hub_private: bool = field(
        default=False, metadata={"aliases": ["--hub_private_repo"], "help": "Create the repository as private."}
    )

    def __post_init__(self) -> None:
        if self.task not in TASK_CHOICES:  # the task entries' names, and auto
            raise ConfigError(f"--task {self.task!r} is not one of {', '.join(TASK_CHOICES)}.")
        compared = self.compared
        if self.task not in compared.tasks:
            raise ConfigError(_unscored_task(self.task))
        for name, default in (
            ("model_name_or_path", compared.default_models),
            ("strategies", compared.default_strategies),
            ("label_budgets", compared.default_budgets),
        ):
            if getattr(self, name) is None:  # the compared recipe's default
                setattr(self, name, list(default))
        known = compared.strategies.names()
        unknown = [s for s in self.strategies if s not in known]
        if unknown:
            raise ConfigError(
                f"--strategies {' '.join(unknown)}: unknown; choose from {', '.join(known)} (recipes/"
                f"{compared.script}'s --strategy)."
            )
        self._check_arms_of_the_recipe()
        for budget in self.label_budgets:
            if budget != "all" and not (budget.isdigit() and int(budget) > 0):
                raise ConfigError(f"--label_budgets {budget}: use positive integers ({compared.budget_unit}) or `all`.")
        if not self.model_name_or_path or not self.strategies or not self.seeds or not self.label_budgets:
            raise ConfigError(
                "--model_name_or_path, --strategies, --seeds and --label_budgets each need at least one value."
            )
        for name in self.selection:
            LABELLED_ROW_CHOICES.check(name)
        for name in self.unlabelled:
            UNLABELLED_POOLS.check(name)
        if not self.selection or not self.unlabelled:
            raise ConfigError("--selection and --unlabelled each need at least one value (e.g. random, none).")
        for name in self.head_init:
            HEAD_INITS.check(name)
        self._check_head_init()
        for name in self.backbone_init:
            BACKBONE_INITS.check(name)
        if not self.backbone_init:
            raise ConfigError("--backbone_init needs at least one value (e.g. pretrained random).")
        if self.pool_samples is not None and self.pool_samples < 2:
            raise ConfigError(f"--pool_samples {self.pool_samples}: give the pool's size in rows (e.g. 2000).")
        arms = self.selection != [DEFAULT_SELECTION] or self.unlabelled != [DEFAULT_UNLABELLED]
        if "all" in self.label_budgets and arms:
            raise ConfigError(
                "--label_budgets all labels every pool row, which leaves nothing to select and no unlabelled rest: "
                "use numeric budgets with --selection and --unlabelled."
            )
        if any(UNLABELLED_POOLS.get(name).uses_pool for name in self.unlabelled):
            unable = [s for s in self.strategies if STRATEGIES.get(s).semi_supervised is None]
            if unable:
                raise ConfigError(
                    f"--unlabelled rest: strategy {unable[0]} learns nothing from unlabelled rows; drop it from "
                    "--strategies or compare --unlabelled none."
                )
            if self.hp_search:
                raise ConfigError("--unlabelled rest does not go with --hp_search (the recipe searches labelled runs).")
        if self.push_to_hub and not self.hub_repo_id:
            raise ConfigError("--push_to_hub true needs --hub_repo_id (e.g. your-name/compare-tweets).")
        if self.parallel < 1:
            raise ConfigError(f"--parallel must be at least 1; got {self.parallel}.")
        if self.hp_search < 0:
            raise ConfigError(f"--hp_search {self.hp_search}: give the number of trials (e.g. 8), or 0 for no search.")
        for entry in self.strategy_args:
            strategy, colon, _ = entry.partition(":")
            if not colon or strategy.strip() not in known:
                raise ConfigError(
                    f"--strategy_args {entry!r}: write STRATEGY: FLAGS with STRATEGY one of "
                    f'{", ".join(known)}, e.g. "lora: --learning_rate 5e-4".'
                )
        self.recipe_values()  # every run's flags, checked now rather than in each cell

    @property
    def compared(self) -> ComparedRecipe:
        """The recipe the cells run, from --task (`compared.COMPARED_RECIPES`)."""
        return compared_recipe_for(self.task)

    def _check_arms_of_the_recipe(self) -> None:
        """An arm the compared recipe has no option for is one line, before anything loads."""
        given = {
            "selection": self.selection != [DEFAULT_SELECTION],
            "unlabelled": self.unlabelled != [DEFAULT_UNLABELLED],
            "pool_samples": self.pool_samples is not None,
            "head_init": self.head_init != [DEFAULT_HEAD_INIT] or self.head_init_model is not None,
            "hp_search": self.hp_search != 0,
            "backbone_init": self.backbone_init != [DEFAULT_BACKBONE_INIT],
        }
        compared = self.compared
        for flag, set_here in given.items():
            if set_here and flag not in compared.arms:
                others = [r for r in COMPARED_RECIPES.entries() if flag in r.arms]
                where = f" (it is an arm of {' and '.join(r.what for r in others)})" if others else ""
                raise ConfigError(
                    f"--{flag} does not apply to {compared.what}: recipes/{compared.script} has no such option"
                    f"{where}; drop --{flag}."
                )

    def _check_head_init(self) -> None:
        """A head that starts from an aligned model needs that model, and a strategy that fine-tunes a new head."""
        needing = [name for name in self.head_init if HEAD_INITS.get(name).needs_model]
        if needing and not self.head_init_model:
            raise ConfigError(
                f"--head_init {needing[0]} needs --head_init_model DIR (an output folder of recipes/align.py)."
            )
        if self.head_init_model and not needing:
            raise ConfigError("--head_init_model applies to --head_init text: add text to --head_init, or drop it.")
        if self.head_init != [DEFAULT_HEAD_INIT]:
            unable = [
                s for s in self.strategies if not STRATEGIES.get(s).finetunes or STRATEGIES.get(s).head_from_probe
            ]
            if unable:
                raise ConfigError(
                    f"--head_init {' '.join(self.head_init)}: strategy {unable[0]} fits its head with the probe, so no "
                    "head init reaches it; compare full or lora (drop it from --strategies)."
                )

    @property
    def explicit_rows(self) -> bool:
        """Cells get their rows as a --train_rows_file (any arm but the defaults, or a pool subset); otherwise
        as --train_samples_per_class, as before the arms existed (earlier comparisons resume unchanged)."""
        default = self.selection == [DEFAULT_SELECTION] and self.unlabelled == [DEFAULT_UNLABELLED]
        return not default or self.pool_samples is not None

    def _split(self, where: str, flags: str) -> list[str]:
        try:
            return shlex.split(flags)
        except ValueError as err:
            raise ConfigError(f"{where} {flags!r}: {err}; quote each flag's value once.") from None

    def recipe_values(self, strategy: Optional[str] = None) -> dict[str, Any]:
        """What --recipe_args and the strategy's --strategy_args (every strategy's when `strategy` is None) set,
        read as the recipe reads them. Refuses what each cell sets itself, the data flags (given to compare, so every
        cell and the comparison itself read the same data), and a --task that compare cannot score."""
        compared = self.compared
        data_flags = {f.name for f in fields(compared.data_arguments.resolve())}
        sources = [("--recipe_args", self.recipe_args)]
        sources += [
            ("--strategy_args", entry.partition(":")[2])
            for entry in self.strategy_args
            if strategy is None or entry.partition(":")[0].strip() == strategy
        ]
        values: dict[str, Any] = {}
        for where, flags in sources:
            tokens = self._split(where, flags)
            given = recipe_flag_values(tokens, where, compared.name)
            for name in given:
                if name in compared.cell_flags:
                    raise ConfigError(
                        f"{where} sets --{name} (in {flags.strip()!r}), which the comparison sets per cell "
                        f"({compared.cell_flags[name]} of compare, or the cell's folder): remove it."
                    )
                if name in data_flags:
                    raise ConfigError(
                        f"{where} sets the data flag --{name} (in {flags.strip()!r}): pass it to hf-transfer compare "
                        "itself, so every cell and the comparison read the same data."
                    )
            task = given.get("task")
            if task is not None and task not in compared.tasks:
                if TASKS.get(task).recipe in COMPARED_RECIPES and compared_recipe_for(task) != compared:
                    raise ConfigError(
                        f"{where} sets --task {task}: pass --task {task} to hf-transfer compare itself (its cells then "
                        f"run recipes/{compared_recipe_for(task).script})."
                    )
                raise ConfigError(_unscored_task(task))
            _check_spelled_in_full(tokens, where, compared.name)
            pools = [
                name for name in ("unlabelled_file", "unlabelled_dir", "unlabelled_split_percentage") if name in given
            ]
            if pools and any(UNLABELLED_POOLS.get(name).uses_pool for name in self.unlabelled):
                raise ConfigError(
                    f"{where} sets --{pools[0]} and --unlabelled rest gives each cell its pool: keep one of the two."
                )
            values.update(given)
        return values

    def flags_for(
        self, strategy: str, head_init: str = DEFAULT_HEAD_INIT, backbone_init: str = DEFAULT_BACKBONE_INIT
    ) -> list[str]:
        """--recipe_args, then this strategy's --strategy_args, as recipe flags; then --hp_search where the strategy
        fine-tunes (a probe has nothing to search), the head init of a cell that starts its head otherwise, and the
        backbone init of a cell whose backbone starts at random."""
        flags = self._split("--recipe_args", self.recipe_args)
        for entry in self.strategy_args:
            name, _, more = entry.partition(":")
            if name.strip() == strategy:
                flags += self._split("--strategy_args", more)
        if self.hp_search and self.compared.strategies.get(strategy).finetunes:
            flags += ["--hp_search", str(self.hp_search)]
        if head_init != DEFAULT_HEAD_INIT:
            flags += ["--head_init", head_init]
            if HEAD_INITS.get(head_init).needs_model:
                flags += ["--head_init_model", str(self.head_init_model)]
        return flags + list(BACKBONE_INITS.get(backbone_init).recipe_flags)
