"""Strategy comparison: which of probe, LoRA, full fine-tuning and LP-FT to use on the user's data, measured.

`arguments` is what the user sets (and reads --recipe_args with recipes/finetune.py's own parser), `arms` the
registries of the --selection and --unlabelled arms, `budgets` draws (or selects) each cell's labelled rows before
anything runs (a task compare cannot score stops there), `grid` builds and runs the cells
(one recipes/finetune.py run each, resumable, stopped cleanly by Ctrl-C or SIGTERM), `summary` the table and the
recommendation, `plots` the figures, `command` the `hf-transfer compare` entry point.
"""

from .arguments import COMPARABLE_STRATEGIES, CompareArguments
from .budgets import LabelledRows
from .grid import Cell, CellResult, GridInterrupted, build_grid, run_grid
from .summary import SummaryRow, recommend, summarize

__all__ = [
    "COMPARABLE_STRATEGIES",
    "Cell",
    "CellResult",
    "CompareArguments",
    "GridInterrupted",
    "LabelledRows",
    "SummaryRow",
    "build_grid",
    "recommend",
    "run_grid",
    "summarize",
]
