"""Run a recipe the way a user does (a fresh process) and read back what it wrote."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
# A finetune run that takes seconds: 32 real tweets, one epoch, no checkpoints (add the strategy and the model).
TINY_TWEETS_RUN = [
    "--dataset_name",
    "tweet_sentiment",
    "--max_train_samples",
    "32",
    "--max_eval_samples",
    "16",
    "--num_train_epochs",
    "1",
    "--save_strategy",
    "no",
]


def write_csv(path: Path, rows, header=("text", "label")) -> str:
    """`rows` (sequences) under `header` as a csv file (quoted where a cell needs it); returns its path."""
    import csv

    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@dataclass
class RecipeRun:
    returncode: int
    output: str
    output_dir: Optional[Path]

    @property
    def results(self) -> dict:
        return json.loads((self.output_dir / "all_results.json").read_text())


def _no_trackers_unless_asked(args) -> list[str]:
    """`--report_to none` unless the test chose trackers itself."""
    return [] if "--report_to" in args else ["--report_to", "none"]


def run_recipe(
    script: str,
    *args: str,
    output_dir: Optional[Path] = None,
    launcher: Optional[list[str]] = None,
    env: Optional[dict] = None,
    timeout: int = 600,
    fresh_process: bool = False,
) -> RecipeRun:
    """`python recipes/<script> args...` (or `launcher` + script), offline, with CI-friendly defaults.

    Without a launcher the recipe runs in this process (`run_recipe_in_process`, as transformers' example tests call
    `main()`), with `env` set around it: a fresh interpreter per run is most of a tiny run's time. `fresh_process`
    (and any launcher) runs the real command line: for what only a process shows (its exit, its file descriptors,
    the environment read at import time)."""
    if launcher is None and not fresh_process:
        with _environment({**OFFLINE_ENV, **(env or {})}):
            return run_recipe_in_process(script, *args, output_dir=output_dir)
    command = (launcher or [sys.executable]) + [str(ROOT / "recipes" / script), *args]
    if output_dir is not None:
        command += ["--output_dir", str(output_dir), *_no_trackers_unless_asked(args)]
    full_env = {**os.environ, **OFFLINE_ENV}
    full_env.update(env or {})
    full_env = {key: value for key, value in full_env.items() if value is not None}  # None: not set
    proc = subprocess.run(command, capture_output=True, text=True, env=full_env, cwd=ROOT, timeout=timeout)
    return RecipeRun(proc.returncode, proc.stdout + proc.stderr, output_dir)


def assert_ok(run: RecipeRun) -> RecipeRun:
    assert run.returncode == 0, run.output[-6000:]
    return run


def run_recipe_in_process(script: str, *args: str, output_dir: Optional[Path] = None) -> RecipeRun:
    """Run a recipe's `__main__` inside this process (no interpreter start-up: ~8 s saved per call on 2 busy cores).

    An exception other than the recipe's clean exit propagates, so a traceback still fails the test.
    """
    import io
    import runpy

    argv = [str(ROOT / "recipes" / script), *args]
    if output_dir is not None:
        argv += ["--output_dir", str(output_dir), *_no_trackers_unless_asked(args)]
    buffer = io.StringIO()
    saved_argv, sys.argv = sys.argv, argv
    returncode = 0
    # Log records too: the root handler of an earlier in-process run still writes to that run's stream.
    capture = logging.StreamHandler(buffer)
    # and the libraries' own loggers that do not propagate (transformers' writes to the stderr of its first use)
    loggers = [logging.getLogger()] + [
        logger
        for logger in list(logging.Logger.manager.loggerDict.values())
        if isinstance(logger, logging.Logger) and logger.handlers and not logger.propagate
    ]
    for logger in loggers:
        logger.addHandler(capture)
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exit_:
        returncode = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.argv = saved_argv
        for logger in loggers:
            logger.removeHandler(capture)
    return RecipeRun(returncode, buffer.getvalue(), output_dir)


@contextlib.contextmanager
def _environment(values: dict):
    """`values` in os.environ (None: unset) while a recipe runs in this process, as `run_recipe` gives them to a
    subprocess."""
    saved = {key: os.environ.get(key) for key in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def finetune_and_reload(
    reload_code: str,
    base: str,
    strategy: str,
    files: tuple[str, str],
    output_dir: Path,
    *flags: str,
    launcher: Optional[list[str]] = None,
) -> tuple[dict, dict]:
    """Run finetune on `files` (train, test) with `strategy`, then `reload_code` (a script reading
    `sys.argv[1:5]` = output_dir, the base model for a LoRA adapter or `-`, train, test) in a fresh interpreter that
    never ran the recipe; returns the run's results and the JSON the script prints last."""
    train, test = files
    args = [
        "--model_name_or_path",
        base,
        "--train_file",
        train,
        "--test_file",
        test,
        "--strategy",
        strategy,
        "--per_device_train_batch_size",
        "8",
        "--save_strategy",
        "no",
        *flags,
    ]
    run = assert_ok(run_recipe("finetune.py", *args, output_dir=output_dir, launcher=launcher))
    reloaded = subprocess.run(
        [sys.executable, "-c", reload_code, str(output_dir), base if strategy == "lora" else "-", train, test],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
    )
    assert reloaded.returncode == 0, reloaded.stderr[-3000:]
    return run.results, json.loads(reloaded.stdout.strip().splitlines()[-1])
