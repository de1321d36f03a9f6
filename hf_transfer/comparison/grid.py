"""The comparison grid: one cell per (model, strategy, label budget, seed, arms), each a run of the compared recipe
(`compared.COMPARED_RECIPES`: recipes/finetune.py, recipes/detect.py) in a folder of its own, so an interrupted
comparison resumes where it stopped and a finished cell is never rerun.

Interrupting a comparison (Ctrl-C, SIGTERM) cancels the queued cells and stops the running ones, whole process
groups included: `run_grid` then raises `GridInterrupted` with the cells that finished, for a partial table.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from ..errors import ConfigError
from .arms import BACKBONE_INITS, DEFAULT_BACKBONE_INIT, DEFAULT_HEAD_INIT, DEFAULT_SELECTION, DEFAULT_UNLABELLED
from .compared import AUTO_RECIPE, COMPARED_RECIPES

if TYPE_CHECKING:
    from .budgets import LabelledRows

__all__ = [
    "Cell",
    "CellResult",
    "GridInterrupted",
    "build_grid",
    "finetune_recipe_path",
    "recipe_path",
    "model_label",
    "model_labels",
    "run_grid",
]

STOP_GRACE_SECONDS = 10.0  # a stopped cell's processes get SIGTERM, then SIGKILL after this long

CELL_FILE = "compare_cell.json"  # what the cell was asked, next to the run's all_results.json
USAGE_FILE = "compare_usage.json"  # what the cell's process used (peak resident memory), measured by compare
RESULTS_FILE = "all_results.json"
ROWS_FILE = "train_rows.json"  # the cell's --train_rows_file: its labelled rows and unlabelled pool, by position


def model_label(model: str) -> str:
    """A model as tables and plots name it: an alias or Hub id as given, a local folder by its name."""
    return Path(model).name if os.path.isabs(model) or model.startswith(".") else model


def model_labels(models: Sequence[str]) -> dict[str, str]:
    """Each model's name in tables and plots, unique among `models`: two folders called `tiny` (`a/tiny`, `b/tiny`)
    are told apart by as many parent folders as it takes, never merged into one row."""
    models = list(dict.fromkeys(models))
    labels = {m: model_label(m) for m in models}
    for depth in range(2, 64):
        clashing = [m for m in models if sum(labels[m] == labels[o] for o in models) > 1]
        if not clashing:
            break
        for m in clashing:
            parts = Path(m.rstrip("/")).parts
            labels[m] = "/".join(parts[-depth:]) if depth < len(parts) else m
    return labels


@dataclass(frozen=True)
class Cell:
    model: str
    strategy: str
    label_budget: str  # rows per class, or "all"
    seed: int
    selection: str = DEFAULT_SELECTION  # `arms.LABELLED_ROW_CHOICES`: how the labelled rows were chosen
    unlabelled: str = DEFAULT_UNLABELLED  # `arms.UNLABELLED_POOLS`: the unlabelled pool the cell gets
    head_init: str = DEFAULT_HEAD_INIT  # `arms.HEAD_INITS`: how the cell's new head starts (finetune's --head_init)
    backbone_init: str = DEFAULT_BACKBONE_INIT  # `arms.BACKBONE_INITS`: pretrained weights, or random (detect's)
    recipe: str = AUTO_RECIPE  # `compared.COMPARED_RECIPES`: the recipe the cell runs

    @property
    def arms(self) -> dict[str, str]:
        """The arms that differ from the defaults (a cell of a comparison without arms has none, and keeps the
        folder and request it had before the arms existed)."""
        defaults = {
            "selection": DEFAULT_SELECTION,
            "unlabelled": DEFAULT_UNLABELLED,
            "head_init": DEFAULT_HEAD_INIT,
            "backbone_init": DEFAULT_BACKBONE_INIT,
        }
        return {name: getattr(self, name) for name, default in defaults.items() if getattr(self, name) != default}

    @property
    def arm_label(self) -> str:
        """The arms as tables and plots name them: empty without any."""
        parts = [f"{self.selection}-selected" if "selection" in self.arms else ""]
        parts.append(f"+ {self.unlabelled} unlabelled" if "unlabelled" in self.arms else "")
        parts.append(f"+ {self.head_init} head init" if "head_init" in self.arms else "")
        parts.append(f"+ {BACKBONE_INITS.get(self.backbone_init).label}" if "backbone_init" in self.arms else "")
        return " ".join(p for p in parts if p)

    @property
    def model_label(self) -> str:
        return model_label(self.model)

    @property
    def model_key(self) -> str:
        """The model's part of the folder name, unique to the model as given: an alias keeps its name; a Hub id or a
        path gets a digest of the whole string after its last part (`a/tiny` and `b/tiny` are two cells)."""
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", self.model.rstrip("/").split("/")[-1]) or "model"
        if "/" not in self.model and os.sep not in self.model and name == self.model:
            return name
        return f"{name}-{hashlib.sha1(self.model.encode()).hexdigest()[:8]}"

    @property
    def folder_name(self) -> str:
        budget = COMPARED_RECIPES.get(self.recipe).folder_budget(self.label_budget)
        arms = "".join(f"--{name}-{value}" for name, value in self.arms.items())
        return f"{self.model_key}--{self.strategy}{arms}--{budget}--seed{self.seed}"

    def recipe_flags(self, rows_file: Optional[Path] = None) -> list[str]:
        # The seed draws the labelled rows too where the recipe lets it (the spread over seeds includes which rows were
        # labelled); validation and test rows stay the same for every cell. A rows file names them (and the
        # unlabelled pool) instead.
        recipe = COMPARED_RECIPES.get(self.recipe)
        flags = [f"--{recipe.model_argument}", self.model, "--strategy", self.strategy, "--seed", str(self.seed)]
        if rows_file is not None:
            return [*flags, "--train_rows_file", str(rows_file)]
        if recipe.rows_seed_argument is not None:
            flags += [f"--{recipe.rows_seed_argument}", str(self.seed)]
        if self.label_budget != "all":
            flags += [f"--{recipe.budget_argument}", self.label_budget]
        return flags


@dataclass
class CellResult:
    cell: Cell
    results: Optional[dict]  # the run's all_results.json; None when it failed
    peak_rss_mib: Optional[float]
    log: Path
    labelled: Optional[LabelledRows] = None  # the labelled rows the cell really had (`budgets.draw_labelled_rows`)


class GridInterrupted(KeyboardInterrupt):
    """The comparison was interrupted: queued cells were cancelled, running ones stopped. `results` holds the
    cells that finished (earlier runs' included), in grid order."""

    def __init__(self, results: list[CellResult], total: int) -> None:
        super().__init__(f"{len(results)} of {total} cells finished")
        self.results, self.total = results, total


def build_grid(
    models: Sequence[str],
    strategies: Sequence[str],
    label_budgets: Sequence[str],
    seeds: Sequence[int],
    selections: Sequence[str] = (DEFAULT_SELECTION,),
    unlabelled: Sequence[str] = (DEFAULT_UNLABELLED,),
    head_inits: Sequence[str] = (DEFAULT_HEAD_INIT,),
    backbone_inits: Sequence[str] = (DEFAULT_BACKBONE_INIT,),
    recipe: str = AUTO_RECIPE,
) -> list[Cell]:
    """Cells in the order they run: the cheapest budgets first, so a comparison shows a first table soon."""

    def budget_key(budget: str) -> float:
        return float("inf") if budget == "all" else int(budget)

    return [
        Cell(model, strategy, budget, seed, selection, pool, head_init, backbone_init, recipe)
        for budget in sorted(dict.fromkeys(label_budgets), key=budget_key)
        for model in dict.fromkeys(models)
        for strategy in dict.fromkeys(strategies)
        for selection in dict.fromkeys(selections)
        for pool in dict.fromkeys(unlabelled)
        for head_init in dict.fromkeys(head_inits)
        for backbone_init in dict.fromkeys(backbone_inits)
        for seed in dict.fromkeys(seeds)
    ]


def recipe_path(script: str) -> Path:
    """recipes/<script> of this checkout (the comparison runs the recipe users run, not a copy of it)."""
    path = Path(__file__).resolve().parents[2] / "recipes" / script
    if not path.is_file():
        raise ConfigError(
            f"hf-transfer compare runs recipes/{script} of a source checkout, and {path} does not exist: run it "
            "from a clone of the repository (pip install -e .)."
        )
    return path


def finetune_recipe_path() -> Path:
    return recipe_path(COMPARED_RECIPES.get("finetune").script)


def _cell_request(cell: Cell, shared_flags: Sequence[str], rows: Optional[dict] = None) -> dict:
    """What the cell is asked; the arms and the rows' digest only where set, so a comparison from before the arms
    reads its cells back as finished."""
    arms = ("selection", "unlabelled", "head_init", "backbone_init", "recipe")
    asked = {k: v for k, v in asdict(cell).items() if k not in arms}
    recipe = {"recipe": cell.recipe} if cell.recipe != AUTO_RECIPE else {}
    request = {"cell": {**asked, **cell.arms, **recipe}, "flags": list(shared_flags)}
    if rows is not None:
        request["rows"] = hashlib.sha1(json.dumps(rows, sort_keys=True).encode()).hexdigest()
    return request


def _finished(folder: Path, request: dict) -> bool:
    """A cell is done when its run wrote all_results.json for exactly this request; another request's results in
    the folder are an error, not something to overwrite or to mix into this table."""
    asked = folder / CELL_FILE
    if not asked.is_file():
        return False
    previous = json.loads(asked.read_text())
    if previous != request:
        if previous.get("cell", {}).get("model") != request["cell"]["model"]:
            what = f"the cell of another model ({previous.get('cell', {}).get('model')!r}, not {request['cell']['model']!r})"
        else:
            what = f"a cell of another comparison ({' '.join(previous.get('flags', []))!r})"
        raise ConfigError(f"{folder} holds {what}: pass another --output_dir, or delete that folder.")
    return (folder / RESULTS_FILE).is_file()


class _Processes:
    """The cells' running recipe processes, each the leader of its own process group, so that stopping a cell stops
    whatever it started (DataLoader workers, CPU worker processes) and nothing is left running."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, subprocess.Popen] = {}
        self.stopping = False

    def start(self, command: list[str], **kwargs) -> Optional[subprocess.Popen]:
        with self._lock:
            if self.stopping:
                return None
            process = subprocess.Popen(command, start_new_session=True, **kwargs)
            self._running[process.pid] = process
            return process

    def wait(self, process: subprocess.Popen) -> tuple[int, Optional[float]]:
        """Exit code and peak resident memory (MiB) of `process`."""
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        with self._lock:
            self._running.pop(process.pid, None)
        return process.returncode, usage.ru_maxrss / 1024.0  # ru_maxrss is in KiB on Linux

    def stop_all(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM to every running cell's process group, SIGKILL to what is left after `grace` seconds."""
        with self._lock:
            self.stopping = True
            groups = list(self._running)
        for pgid in groups:
            _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_group_alive(pgid) for pgid in groups):
            time.sleep(0.05)
        for pgid in groups:
            _signal_group(pgid, signal.SIGKILL)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _run_cell(
    folder: Path, command: list[str], threads: int, processes: _Processes
) -> tuple[Optional[int], Optional[float], Path]:
    """One recipe run in a fresh process; its output goes to the cell's log. Returns (exit code, peak RSS, log);
    the exit code is None when the comparison was stopping and the run never started."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "compare.log"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    with log.open("w") as out:
        process = processes.start(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        if process is None:
            return None, None, log
        code, peak = processes.wait(process)
    return code, peak, log


def run_grid(
    cells: Sequence[Cell],
    output_dir: Path,
    shared_flags: Sequence[str],
    *,
    extra_flags: Callable[[Cell], list[str]] = lambda cell: [],
    cell_rows: Callable[[Cell], Optional[dict]] = lambda cell: None,
    parallel: int = 1,
    progress: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> list[CellResult]:
    """Run every unfinished cell (`parallel` at once) and return every cell's result, earlier ones included.

    Each run gets the cell's own flags, then `shared_flags` (the data), then `extra_flags(cell)` (its strategy's and arms'). Where
    `cell_rows(cell)` gives `{"labelled": [...], "unlabelled": [...]}` (train positions), the cell's folder gets it as
    its --train_rows_file, in place of the per-class draw.

    A cell that exits 2 (a bad input) stops the comparison with its error line: every other cell would fail the
    same way. Any other failure is recorded, reported, and left out of the table. An interrupt (KeyboardInterrupt;
    the caller turns SIGTERM into one) cancels the queued cells, stops the running ones and raises
    `GridInterrupted` with what finished; a stopped cell is not recorded, so the next run starts it again.
    """
    scripts = {cell.recipe: recipe_path(COMPARED_RECIPES.get(cell.recipe).script) for cell in cells}
    cores = os.cpu_count() or 1
    threads = max(1, cores // parallel)
    cells_dir = output_dir / "cells"
    owners: dict[str, Cell] = {}
    for cell in cells:  # a folder is one cell's: two cells sharing one would overwrite and mix each other's runs
        other = owners.setdefault(cell.folder_name, cell)
        if other != cell:
            raise ConfigError(
                f"The cells of {other.model!r} and {cell.model!r} would share the folder "
                f"{cells_dir / cell.folder_name}: give the models distinct names or paths."
            )
    pending, results = [], {}
    for cell in cells:
        folder = cells_dir / cell.folder_name
        request = _cell_request(cell, [*shared_flags, *extra_flags(cell)], cell_rows(cell))
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
    processes = _Processes()

    def run(item: tuple[Cell, Path, dict]) -> Optional[CellResult]:
        cell, folder, request = item
        if processes.stopping:
            return None
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CELL_FILE).write_text(json.dumps(request, indent=2) + "\n")
        rows, rows_file = cell_rows(cell), None
        if rows is not None:
            rows_file = folder / ROWS_FILE
            rows_file.write_text(json.dumps(rows) + "\n")
        command = [
            sys.executable,
            str(scripts[cell.recipe]),
            *cell.recipe_flags(rows_file),
            "--report_to",
            "none",  # unless the comparison's flags ask for trackers
            *request["flags"],
            "--output_dir",
            str(folder),
        ]
        progress(f"compare: running {cell.folder_name}")
        code, peak, log = _run_cell(folder, command, threads, processes)
        if code is None or processes.stopping:  # stopped by an interrupt: neither finished nor failed
            return None
        if code == 2:
            lines = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("error: ")]
            raise ConfigError(f"cell {cell.folder_name}: {lines[-1][7:] if lines else 'bad input'} (log: {log})")
        (folder / USAGE_FILE).write_text(json.dumps({"peak_rss_mib": peak, "exit_code": code}) + "\n")
        ok = code == 0 and (folder / RESULTS_FILE).is_file()
        return CellResult(cell, json.loads((folder / RESULTS_FILE).read_text()) if ok else None, peak, log)

    pool = ThreadPoolExecutor(max_workers=parallel)
    futures = [pool.submit(run, item) for item in pending]
    try:
        for future in as_completed(futures):
            result = future.result()
            done += 1
            results[result.cell] = result
            elapsed = time.perf_counter() - started
            left = len(pending) - done
            eta = f", about {elapsed / done * left / 60:.0f} min left" if left else ""
            status = "done" if result.results is not None else f"FAILED (see {result.log})"
            progress(f"compare: [{done}/{len(pending)}] {result.cell.folder_name} {status}{eta}")
    except BaseException as err:  # an interrupt, or a cell's bad input: nothing more runs, nothing is left running
        with _interrupts_ignored():
            for future in futures:
                future.cancel()
            processes.stop_all()
            pool.shutdown(wait=True, cancel_futures=True)
        if not isinstance(err, KeyboardInterrupt):
            raise
        for future in futures:  # a cell that finished just as the interrupt came counts
            if future.done() and not future.cancelled() and future.exception() is None and future.result():
                results.setdefault(future.result().cell, future.result())
        raise GridInterrupted([results[cell] for cell in cells if cell in results], len(cells)) from None
    pool.shutdown(wait=True)
    return [results[cell] for cell in cells]


class _interrupts_ignored:
    """SIGINT and SIGTERM ignored for a moment (main thread only): a second Ctrl-C must not cut the clean-up short
    and leave a cell's processes running."""

    _SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self) -> None:
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in self._SIGNALS}

    def __exit__(self, *exc_info) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
