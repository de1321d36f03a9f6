"""A recipe's command line: `[CONFIG.yaml|json] [--flag value ...]` into its argument dataclasses, every flag and
config key checked, every rejected value one `ConfigError`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml
from transformers import HfArgumentParser, TrainingArguments

from ..errors import ConfigError, HfTransferError
from .checks import check_training_arguments

__all__ = ["parse_recipe_args", "config_to_argv", "given_argument_names", "given_argument_value"]

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
    try:
        data = yaml.safe_load(file.read_text())  # JSON is a subset of YAML
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"Config file {path} is not valid YAML{where}: {problem}. Fix the file's syntax.") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"Config file {path} is not UTF-8 text ({err.reason}); save it as UTF-8.") from err
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {path} must hold a mapping of argument names to values.")
    return data


def _known_flags(parser: HfArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def _check_flags(
    parser: HfArgumentParser, argv: Sequence[str], config_keys: Sequence[str], config: Optional[str]
) -> None:
    """Every `--flag` (and config key) must be one of the recipe's, else one line naming the closest ones."""
    import difflib

    known = _known_flags(parser)
    names = sorted({option[2:].replace("-", "_") for option in known if option.startswith("--")})
    unknown = [key for key in config_keys if f"--{key}" not in known]
    in_config = bool(unknown)  # config keys are named as keys, command-line ones as flags
    if not in_config:
        unknown = [  # a value with a space is a value even when it starts with "--" (argparse's rule too)
            arg.split("=", 1)[0][2:]
            for arg in argv
            if arg.startswith("--") and " " not in arg and arg.split("=", 1)[0] not in known
        ]
    if unknown:
        key, prefix = unknown[0], "" if in_config else "--"
        where = f"key {key} in {config}" if in_config else f"argument --{key} on the command line"
        close = difflib.get_close_matches(key.replace("-", "_"), names, n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(prefix + c for c in close)}?" if close else " Run with --help for the list."
        more = f" (and {len(unknown) - 1} more unknown)" if len(unknown) > 1 else ""
        raise ConfigError(f"Unknown {where}{more}.{hint}")


def _split_config(argv: Optional[Sequence[str]], default_config: Optional[str]) -> tuple[Optional[str], dict, list]:
    """`[CONFIG] [--flags]` (or the default config for no arguments) as (config path, its values, the flags)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv and default_config:
        argv = [default_config]
    if argv and argv[0].endswith(_CONFIG_SUFFIXES) and not argv[0].startswith("-"):
        return argv[0], _read_config_file(argv[0]), argv[1:]
    return None, {}, argv


def given_argument_names(argv: Optional[Sequence[str]] = None, default_config: Optional[str] = None) -> frozenset[str]:
    """The argument names a run was given, by a flag or a config key: a recipe may choose a default from the
    machine or the data for an argument nobody set (image DataLoader workers), never for one a user set."""
    _, values, flags = _split_config(argv, default_config)
    names = {arg.split("=", 1)[0][2:].replace("-", "_") for arg in flags if arg.startswith("--")}
    return frozenset(names | set(values))


def given_argument_value(argv: Optional[Sequence[str]], name: str) -> Optional[str]:
    """The value a run was given for `name` (`--name VALUE`, `--name=VALUE`, or a config key; the flag wins), None
    when not given: a command whose other arguments depend on it (compare's --task picks the data arguments) reads it
    before parsing the rest."""
    import argparse

    _, values, flags = _split_config(argv, None)
    reader = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    reader.add_argument(f"--{name}", f"--{name.replace('_', '-')}", dest=name)
    given, _ = reader.parse_known_args(flags)
    value = getattr(given, name)
    if value is None and values.get(name) is not None:
        value = str(values[name])
    return value


def parse_recipe_args(
    parser: HfArgumentParser, argv: Optional[Sequence[str]] = None, default_config: Optional[str] = None
) -> tuple:
    """Parse `[CONFIG.yaml|json] [--flag value ...]`: flags after the file override it.

    With no arguments at all, `default_config` is used, so a recipe runs its built-in job. An unknown flag or
    config key, a config file that is not YAML, and a value the argument classes reject (transformers'
    `TrainingArguments` raises plain `ValueError`s) are `ConfigError`s: one line, exit 2. The arguments are then
    checked as far as they can be before any data or model is loaded (`hf_transfer.recipe.checks`).
    """
    if not list(sys.argv[1:] if argv is None else argv) and default_config:
        logger.info("No arguments given: running the default job from %s", default_config)
    config, values, argv = _split_config(argv, default_config)
    _check_flags(parser, argv, list(values), config)
    argv = config_to_argv(values) + argv
    try:
        parsed = parser.parse_args_into_dataclasses(args=argv)
    except HfTransferError:
        raise
    except ValueError as err:  # a dataclass's own check (TrainingArguments.__post_init__)
        raise ConfigError(f"{err}".strip().splitlines()[0]) from err
    for arguments in parsed:
        if isinstance(arguments, TrainingArguments):
            check_training_arguments(arguments)
    return parsed
