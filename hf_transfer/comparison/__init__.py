"""Strategy comparison: which of probe, LoRA, full fine-tuning and LP-FT (or, for object detection, a frozen or
fine-tuned backbone) to use on the user's data, measured.

`compared` is the registry of the recipes compare runs as cells (recipes/finetune.py, recipes/detect.py, picked by
the task entry's `recipe`), `arguments` what the user sets (and reads --recipe_args with the recipe's own parser),
`arms` the registries of the --selection, --unlabelled, --head_init and --backbone_init arms, `budgets` draws (or
selects) each cell's labelled rows before anything runs (a task compare cannot score, or a bad box, stops there),
`grid` builds and runs the cells (one recipe run each, resumable, stopped cleanly by Ctrl-C or SIGTERM), `summary`
the table and the recommendation, `plots` the figures, `command` the `hf-transfer compare` entry point.
"""

from .arguments import COMPARABLE_STRATEGIES, CompareArguments
from .budgets import LabelledRows, RowsPlan
from .compared import COMPARED_RECIPES, ComparedMetric, ComparedRecipe
from .grid import Cell, CellResult, GridInterrupted, build_grid, run_grid
from .summary import SummaryRow, recommend, summarize

__all__ = [
    "COMPARABLE_STRATEGIES",
    "COMPARED_RECIPES",
    "ComparedMetric",
    "ComparedRecipe",
    "Cell",
    "CellResult",
    "CompareArguments",
    "GridInterrupted",
    "LabelledRows",
    "RowsPlan",
    "SummaryRow",
    "build_grid",
    "recommend",
    "run_grid",
    "summarize",
]
