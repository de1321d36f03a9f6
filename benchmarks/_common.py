"""What every benchmark records next to its numbers: the machine, per-step times, process memory.

The benchmarks are run as scripts (`python benchmarks/NAME.py`), so this module is imported as `_common` from the
scripts' own folder.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

__all__ = ["machine_info", "StepTimer", "current_rss_mib", "peak_rss_mib", "ONE_FINAL_EVALUATION"]

# Recipe flags of a benchmark cell: no checkpoints, no evaluation during training, no trackers (the cell reads the
# final evaluation in all_results.json).
ONE_FINAL_EVALUATION = ["--save_strategy", "no", "--eval_strategy", "no", "--report_to", "none"]

_ALWAYS = ("torch", "transformers", "datasets")


def machine_info(*packages: str, torch_threads: int | None = None) -> dict:
    """Platform, cores, torch threads, GPU, Python, and the versions of torch, transformers, datasets and
    `packages` (those not installed are left out)."""
    info = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads() if torch_threads is None else torch_threads,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": sys.version.split()[0],
    }
    for package in (*_ALWAYS, *packages):
        try:
            info[package.replace("-", "_")] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return info


class StepTimer(TrainerCallback):
    """Wall time and process CPU time (all threads) of every optimizer step, `on_step_begin` to `on_step_end`
    (a GPU is synchronised first, so its queued work is counted in the step that queued it)."""

    def __init__(self):
        self.durations: list[float] = []
        self.cpu_durations: list[float] = []
        self._start = self._cpu_start = 0.0

    @staticmethod
    def _sync() -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def on_step_begin(self, args, state, control, **kwargs):
        self._sync()
        self._start, self._cpu_start = time.perf_counter(), time.process_time()

    def on_step_end(self, args, state, control, **kwargs):
        self._sync()
        self.durations.append(time.perf_counter() - self._start)
        self.cpu_durations.append(time.process_time() - self._cpu_start)


def current_rss_mib() -> float:
    """Resident memory of this process now (Linux)."""
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports `ru_maxrss` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


ROOT = Path(__file__).resolve().parent.parent


def run_recipe_for_results(script: str, flags: list[str], output_dir: str) -> dict:
    """`python recipes/<script> <flags> --output_dir <output_dir>` the way a user runs it; its `all_results.json`.
    A failed run stops the benchmark with the command's last output."""
    command = [sys.executable, str(ROOT / "recipes" / script), *flags, "--output_dir", output_dir]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{script} {' '.join(flags)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    return json.loads((Path(output_dir) / "all_results.json").read_text())
