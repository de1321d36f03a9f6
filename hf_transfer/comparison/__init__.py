"""Strategy comparison: which of probe, LoRA, full fine-tuning and LP-FT to use on the user's data, measured.

`config` is what the user sets, `grid` builds and runs the cells (one recipes/finetune.py run each, resumable),
`summary` the table and the recommendation, `plots` the figures, `command` the `hf-transfer compare` entry point.
"""

from .config import COMPARABLE_STRATEGIES, CompareArguments
from .grid import Cell, CellResult, build_grid, run_grid
from .summary import SummaryRow, recommend, summarize

__all__ = [
    "COMPARABLE_STRATEGIES",
    "Cell",
    "CellResult",
    "CompareArguments",
    "SummaryRow",
    "build_grid",
    "recommend",
    "run_grid",
    "summarize",
]
