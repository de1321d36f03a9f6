"""`--push_to_hub`: the comparison as a Hub dataset repository (its card is comparison.md; the table, every cell's
numbers and the plots as files), pushed with the same bounded, retried requests as a model."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

from ..hub import HubArguments, push_staged_folder
from .compared import COMPARED_RECIPES

__all__ = ["COMPARISON_FILES", "push_comparison"]

COMPARISON_FILES = (
    "comparison.csv",
    "comparison_cells.jsonl",
    *(name for recipe in COMPARED_RECIPES.entries() for name in recipe.plot_files),
)

_CARD_HEADER = """---
tags:
- hf-transfer
- strategy-comparison
configs:
- config_name: summary
  data_files: comparison.csv
- config_name: cells
  data_files: comparison_cells.jsonl
---

"""


def push_comparison(
    output_dir: Path,
    repo_id: str,
    limits: Optional[HubArguments] = None,
    *,
    private: Optional[bool] = None,
    token: Optional[str] = None,
) -> str:
    """Upload the comparison in `output_dir` to the dataset repository `repo_id`, within `limits` (retries,
    request timeout, deadline; the defaults when None); returns the commit URL."""
    limits = limits or HubArguments()

    def stage(staging: Path) -> None:
        (staging / "README.md").write_text(_CARD_HEADER + (output_dir / "comparison.md").read_text())
        for name in COMPARISON_FILES:
            if (output_dir / name).is_file():
                shutil.copy2(output_dir / name, staging / name)

    return push_staged_folder(
        stage,
        repo_id,
        repo_type="dataset",
        token=token,
        private=private,
        commit_message="Strategy comparison with hf_transfer",
        max_retries=limits.hub_max_retries,
        request_timeout=limits.hub_request_timeout,
        deadline=limits.hub_deadline,
        flags={"token": "HF_TOKEN", "repo_id": "--hub_repo_id"},
        retry_hint=(
            f"The comparison in {output_dir} is intact: run the same command again with --push_to_hub true "
            "(finished cells are not rerun)."
        ),
    )
