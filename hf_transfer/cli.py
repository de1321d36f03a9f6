"""Shared plumbing of the recipes: argument files, logging, and turning user errors into one message.

Recipes stay readable top to bottom (like transformers' `run_*.py`); what every recipe would
otherwise repeat lives here.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import datasets
import transformers
import yaml
from transformers import HfArgumentParser, TrainingArguments

from .errors import ConfigError, HfTransferError

__all__ = ["parse_recipe_args", "setup_logging", "run_recipe", "config_to_argv"]

logger = logging.getLogger(__name__)

_CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def config_to_argv(config: dict[str, Any]) -> list[str]:
    """`{"max_train_samples": 100, "do_train": True, "lora_target_modules": ["query"]}` -> CLI flags."""
    argv: list[str] = []
    for key, value in config.items():
        if value is None:
            continue
        argv.append(f"--{key}")
        if isinstance(value, (list, tuple)):
            argv.extend(str(v) for v in value)
        elif isinstance(value, bool):
            argv.append(str(value).lower())
        else:
            argv.append(str(value))
    return argv


def _read_config_file(path: str) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"Config file {path} does not exist.")
    data = yaml.safe_load(file.read_text())  # JSON is a subset of YAML
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {path} must hold a mapping of argument names to values.")
    return data


def parse_recipe_args(
    parser: HfArgumentParser, argv: Optional[Sequence[str]] = None, default_config: Optional[str] = None
) -> tuple:
    """Parse `[CONFIG.yaml|json] [--flag value ...]`: flags after the file override it.

    With no arguments at all, `default_config` is used, so a recipe runs its built-in job.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv and default_config:
        logger.info("No arguments given: running the default job from %s", default_config)
        argv = [default_config]
    if argv and argv[0].endswith(_CONFIG_SUFFIXES) and not argv[0].startswith("-"):
        argv = config_to_argv(_read_config_file(argv[0])) + argv[1:]
    return parser.parse_args_into_dataclasses(args=argv)


def setup_logging(training_args: TrainingArguments) -> None:
    """Log on the main process only (others at warning), for this package and the HF libraries."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    if training_args.should_log:
        transformers.utils.logging.set_verbosity_info()
    log_level = training_args.get_process_log_level()
    logging.getLogger("hf_transfer").setLevel(log_level)
    logging.getLogger("__main__").setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


def run_recipe(main: Callable[[], Any]) -> None:
    """Run a recipe's `main`; a user error ends with its message and exit code 2, not a traceback."""
    try:
        main()
    except HfTransferError as err:
        rank = os.environ.get("RANK", "0")
        if rank == "0":
            print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
