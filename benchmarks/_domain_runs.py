"""The domain-adaptation pairs and one `recipes/domain_adapt.py` run, shared by `domain_adaptation.py` (the grid)
and `da_label_shift_check.py` (which re-trains the grid's source-only cells), so both run the very same recipe
command.

Imported as `_domain_runs` from the scripts' own folder, like `_common`.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Optional

__all__ = ["ROOT", "PAIRS", "run_domain_adapt"]

ROOT = Path(__file__).resolve().parent.parent
# pair -> (recipe config, description)
PAIRS = {
    "text": ("recipes/configs/domain_adapt_text.yaml", "MiniLM (full fine-tuning), tweet_sentiment -> drug_reviews"),
    "vision": (
        "recipes/configs/domain_adapt_vision.yaml",
        "EfficientNet-Lite0 (full fine-tuning, 64x64), digits -> digits_m",
    ),
}


def run_domain_adapt(
    pair: str, method_flags: list[str], seed: int, output_dir: str, threads: Optional[int] = None, extra_args: str = ""
) -> subprocess.CompletedProcess:
    """`recipes/domain_adapt.py <pair's config> <method_flags> --seed S` offline in a fresh subprocess (no
    checkpoints), writing to `output_dir`; `threads` sets OMP_NUM_THREADS (inherited when None)."""
    command = [
        sys.executable,
        str(ROOT / "recipes" / "domain_adapt.py"),
        str(ROOT / PAIRS[pair][0]),
        *method_flags,
        "--seed",
        str(seed),
        "--pair_seed",
        str(seed),
        "--output_dir",
        output_dir,
        "--save_strategy",
        "no",
        "--disable_tqdm",
        "true",
        *shlex.split(extra_args),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
