"""The comparison grid: one cell per (model, strategy, label budget, seed), each a run of recipes/finetune.py in a
folder of its own, so an interrupted comparison resumes where it stopped and a finished cell is never rerun."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..errors import ConfigError

__all__ = ["Cell", "CellResult", "build_grid", "finetune_recipe_path", "model_label", "run_grid"]

CELL_FILE = "compare_cell.json"  # what the cell was asked, next to the run's all_results.json
USAGE_FILE = "compare_usage.json"  # what the cell's process used (peak resident memory), measured by compare
RESULTS_FILE = "all_results.json"


def model_label(model: str) -> str:
    """A model as tables and plots name it: an alias or Hub id as given, a local folder by its name."""
    return Path(model).name if os.path.isabs(model) or model.startswith(".") else model


@dataclass(frozen=True)
class Cell:
    model: str
    strategy: str
    label_budget: str  # rows per class, or "all"
    seed: int

    @property
    def model_label(self) -> str:
        return model_label(self.model)

    @property
    def folder_name(self) -> str:
        model = re.sub(r"[^A-Za-z0-9._-]+", "_", self.model.rstrip("/").split("/")[-1])
        budget = "all" if self.label_budget == "all" else f"{self.label_budget}-per-class"
        return f"{model}--{self.strategy}--{budget}--seed{self.seed}"

    def recipe_flags(self) -> list[str]:
        # The seed draws the labelled rows too (the spread over seeds includes which rows were labelled); validation
        # and test rows stay the same for every cell.
        flags = ["--model_name_or_path", self.model, "--strategy", self.strategy, "--seed", str(self.seed)]
        flags += ["--train_samples_seed", str(self.seed)]
        if self.label_budget != "all":
            flags += ["--train_samples_per_class", self.label_budget]
        return flags


@dataclass
class CellResult:
    cell: Cell
    results: Optional[dict]  # the run's all_results.json; None when it failed
    peak_rss_mib: Optional[float]
    log: Path


def build_grid(
    models: Sequence[str], strategies: Sequence[str], label_budgets: Sequence[str], seeds: Sequence[int]
) -> list[Cell]:
    """Cells in the order they run: the cheapest budgets first, so a comparison shows a first table soon."""

    def budget_key(budget: str) -> float:
        return float("inf") if budget == "all" else int(budget)

    return [
        Cell(model, strategy, budget, seed)
        for budget in sorted(dict.fromkeys(label_budgets), key=budget_key)
        for model in dict.fromkeys(models)
        for strategy in dict.fromkeys(strategies)
        for seed in dict.fromkeys(seeds)
    ]


def finetune_recipe_path() -> Path:
    """recipes/finetune.py of this checkout (the comparison runs the recipe users run, not a copy of it)."""
    path = Path(__file__).resolve().parents[2] / "recipes" / "finetune.py"
    if not path.is_file():
        raise ConfigError(
            f"hf-transfer compare runs recipes/finetune.py of a source checkout, and {path} does not exist: run it "
            "from a clone of the repository (pip install -e .)."
        )
    return path


def _cell_request(cell: Cell, shared_flags: Sequence[str]) -> dict:
    return {"cell": asdict(cell), "flags": list(shared_flags)}


def _finished(folder: Path, request: dict) -> bool:
    """A cell is done when its run wrote all_results.json for exactly this request; another request's results in
    the folder are an error, not something to overwrite or to mix into this table."""
    asked = folder / CELL_FILE
    if not asked.is_file():
        return False
    previous = json.loads(asked.read_text())
    if previous != request:
        raise ConfigError(
            f"{folder} holds a cell of another comparison ({' '.join(previous.get('flags', []))!r}): pass another "
            "--output_dir, or delete that folder."
        )
    return (folder / RESULTS_FILE).is_file()


def _run_cell(cell: Cell, folder: Path, command: list[str], threads: int) -> tuple[int, Optional[float], Path]:
    """One recipe run in a fresh process; its output goes to the cell's log. Returns (exit code, peak RSS, log)."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "compare.log"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss / 1024.0, log  # ru_maxrss is in KiB on Linux


def run_grid(
    cells: Sequence[Cell],
    output_dir: Path,
    shared_flags: Sequence[str],
    *,
    extra_flags: Callable[[str], list[str]] = lambda strategy: [],
    parallel: int = 1,
    progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> list[CellResult]:
    """Run every unfinished cell (`parallel` at once) and return every cell's result, earlier ones included.

    Each run gets the cell's own flags, then `shared_flags` (the data), then `extra_flags(strategy)`.

    A cell that exits 2 (a bad input) stops the comparison with its error line: every other cell would fail the
    same way. Any other failure is recorded, reported, and left out of the table.
    """
    recipe = finetune_recipe_path()
    cores = os.cpu_count() or 1
    threads = max(1, cores // parallel)
    cells_dir = output_dir / "cells"
    pending, results = [], {}
    for cell in cells:
        folder = cells_dir / cell.folder_name
        request = _cell_request(cell, [*shared_flags, *extra_flags(cell.strategy)])
        if _finished(folder, request):
            usage = json.loads((folder / USAGE_FILE).read_text()) if (folder / USAGE_FILE).is_file() else {}
            results[cell] = CellResult(
                cell,
                json.loads((folder / RESULTS_FILE).read_text()),
                usage.get("peak_rss_mib"),
                folder / "compare.log",
            )
        else:
            pending.append((cell, folder, request))
    progress(f"compare: {len(cells)} cells, {len(results)} finished earlier, {len(pending)} to run")
    started = time.perf_counter()
    done = 0

    def run(item: tuple[Cell, Path, dict]) -> CellResult:
        cell, folder, request = item
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CELL_FILE).write_text(json.dumps(request, indent=2) + "\n")
        command = [
            sys.executable,
            str(recipe),
            *cell.recipe_flags(),
            "--report_to",
            "none",  # unless the comparison's flags ask for trackers
            *request["flags"],
            "--output_dir",
            str(folder),
        ]
        progress(f"compare: running {cell.folder_name}")
        code, peak, log = _run_cell(cell, folder, command, threads)
        if code == 2:
            lines = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("error: ")]
            raise ConfigError(f"cell {cell.folder_name}: {lines[-1][7:] if lines else 'bad input'} (log: {log})")
        (folder / USAGE_FILE).write_text(json.dumps({"peak_rss_mib": peak, "exit_code": code}) + "\n")
        ok = code == 0 and (folder / RESULTS_FILE).is_file()
        return CellResult(cell, json.loads((folder / RESULTS_FILE).read_text()) if ok else None, peak, log)

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for future in as_completed([pool.submit(run, item) for item in pending]):
            result = future.result()
            done += 1
            results[result.cell] = result
            elapsed = time.perf_counter() - started
            left = len(pending) - done
            eta = f", about {elapsed / done * left / 60:.0f} min left" if left else ""
            status = "done" if result.results is not None else f"FAILED (see {result.log})"
            progress(f"compare: [{done}/{len(pending)}] {result.cell.folder_name} {status}{eta}")
    return [results[cell] for cell in cells]
