"""Shared plumbing of the recipes: argument files, logging, and turning user errors into one message.

Recipes stay readable top to bottom (like transformers' `run_*.py`); what every recipe would
otherwise repeat lives here.
"""

from __future__ import annotations

import errno
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

__all__ = ["parse_recipe_args", "setup_logging", "setup_quiet_logging", "run_recipe", "config_to_argv"]

logger = logging.getLogger(__name__)

_CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}  # no space, quota, read-only: the disk, not the code


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
        unknown = [
            arg.split("=", 1)[0][2:] for arg in argv if arg.startswith("--") and arg.split("=", 1)[0] not in known
        ]
    if unknown:
        key, prefix = unknown[0], "" if in_config else "--"
        where = f"key {key} in {config}" if in_config else f"argument --{key} on the command line"
        close = difflib.get_close_matches(key.replace("-", "_"), names, n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(prefix + c for c in close)}?" if close else " Run with --help for the list."
        more = f" (and {len(unknown) - 1} more unknown)" if len(unknown) > 1 else ""
        raise ConfigError(f"Unknown {where}{more}.{hint}")


def parse_recipe_args(
    parser: HfArgumentParser, argv: Optional[Sequence[str]] = None, default_config: Optional[str] = None
) -> tuple:
    """Parse `[CONFIG.yaml|json] [--flag value ...]`: flags after the file override it.

    With no arguments at all, `default_config` is used, so a recipe runs its built-in job. An unknown flag or
    config key, a config file that is not YAML, and a value the argument classes reject (transformers'
    `TrainingArguments` raises plain `ValueError`s) are `ConfigError`s: one line, exit 2. The arguments are then
    checked as far as they can be before any data or model is loaded (`hf_transfer.checks`).
    """
    from .checks import check_training_arguments

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv and default_config:
        logger.info("No arguments given: running the default job from %s", default_config)
        argv = [default_config]
    config, values = None, {}
    if argv and argv[0].endswith(_CONFIG_SUFFIXES) and not argv[0].startswith("-"):
        config, argv = argv[0], argv[1:]
        values = _read_config_file(config)
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


def setup_logging(training_args: TrainingArguments) -> None:
    """Log on the main process only (others at warning), for this package and the HF libraries; each process
    says its rank, device and precision once."""
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
    precision = "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "fp32"
    logger.warning(
        f"Process rank: {training_args.process_index}, device: {training_args.device}, "
        f"n_processes: {training_args.world_size}, precision: {precision}"
    )
    from .checks import training_warnings

    if training_args.should_log:
        for message in training_warnings(training_args):
            logger.warning(message)


def _launcher_command_line() -> list[str]:
    """The parent's command line when it is `accelerate launch ...`, else []."""
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            parent = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []
    if not any("accelerate" in a for a in parent[:3]) or "launch" not in parent:
        return []
    return parent


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _requested_cpu_processes() -> int:
    """How many processes `accelerate launch --cpu --num_processes N` asked for, when it started only one.

    accelerate (1.x) starts several CPU processes only through mpirun; without it, its simple launcher
    runs the script once, with `MASTER_ADDR` set but no `WORLD_SIZE`. The requested N is then only
    visible on the launcher's own command line.
    """
    if os.environ.get("WORLD_SIZE") or os.environ.get("RANK") or not os.environ.get("MASTER_ADDR"):
        return 1
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() not in ("1", "true", "yes"):
        return 1
    parent = _launcher_command_line()
    if not parent:
        return 1
    for i, arg in enumerate(parent):
        if arg.startswith("--num_processes"):
            value = arg.split("=", 1)[1] if "=" in arg else (parent[i + 1] if i + 1 < len(parent) else "1")
            return int(value) if value.isdigit() else 1
    return 1


def relaunch_cpu_processes(num_processes: int) -> int:
    """Start `num_processes` copies of this script as one DDP group over gloo and return their exit status.

    torch's launcher (`torch.distributed.run`) would do, but it turns a worker's clear user error (exit 2) into
    its own exit 1 and a `ChildFailedError` traceback. Here each rank gets torch's environment contract (RANK,
    LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT); when one fails the others are stopped, and the status is
    the first failure's, so a bad input still exits 2 with its one line (printed by rank 0).
    """
    import signal
    import subprocess
    import time

    # accelerate always exports MASTER_PORT (29500 unless --main_process_port is given); keep a port the user
    # chose, otherwise take a free one so that two runs on one machine do not collide.
    chose_port = any(a.startswith("--main_process_port") for a in _launcher_command_line())
    port = os.environ["MASTER_PORT"] if chose_port and os.environ.get("MASTER_PORT") else str(_free_port())
    base_env = {
        **os.environ,
        "ACCELERATE_USE_CPU": "True",
        "MASTER_ADDR": os.environ.get("MASTER_ADDR", "127.0.0.1"),
        "MASTER_PORT": port,
        "WORLD_SIZE": str(num_processes),
        "LOCAL_WORLD_SIZE": str(num_processes),
    }
    workers = [
        subprocess.Popen(
            [sys.executable, sys.argv[0], *sys.argv[1:]], env={**base_env, "RANK": str(rank), "LOCAL_RANK": str(rank)}
        )
        for rank in range(num_processes)
    ]

    def stop(signum=signal.SIGTERM, _frame=None) -> None:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        status = 0
        while any(w.poll() is None for w in workers):
            failed = [w.returncode for w in workers if w.returncode not in (None, 0)]
            if failed and not status:
                status = failed[0]
                stop()  # the others may wait forever in a collective for the rank that left
                deadline = time.time() + 10
                while time.time() < deadline and any(w.poll() is None for w in workers):
                    time.sleep(0.1)
                for w in workers:
                    if w.poll() is None:
                        w.kill()
            time.sleep(0.1)
        failed = [w.returncode for w in workers if w.returncode != 0]
        status = status or (failed[0] if failed else 0)
        return 128 - status if status < 0 else status  # killed by a signal: the shell's 128 + n
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def setup_quiet_logging(script_logger: logging.Logger) -> None:
    """For benchmarks: the script's and hf_transfer's steps at INFO; transformers' load reports and Trainer chatter off."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%H:%M:%S", level=logging.WARNING
    )
    script_logger.setLevel(logging.INFO)
    logging.getLogger("hf_transfer").setLevel(logging.INFO)
    transformers.utils.logging.set_verbosity_error()
    datasets.utils.logging.set_verbosity_warning()


def run_recipe(main: Callable[[], Any]) -> None:
    """Run a recipe's `main`; a user error ends with its message and exit code 2, not a traceback.

    Under `accelerate launch --cpu --num_processes N` (N > 1), which accelerate runs as a single
    process unless mpirun is configured, the recipe starts the N processes itself, says so, and
    exits with their status. A finished run releases its process group before Python exits.
    """
    requested = _requested_cpu_processes()
    if requested > 1:
        print(
            f"accelerate started 1 process for --cpu --num_processes {requested}; "
            f"starting {requested} CPU processes (DDP over gloo).",
            file=sys.stderr,
        )
        sys.exit(relaunch_cpu_processes(requested))
    from .run_guard import release_output_dirs, where_the_work_is

    rank = os.environ.get("RANK", "0")
    try:
        main()
    except HfTransferError as err:
        if rank == "0":
            print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:
        if err.errno not in _DISK_ERRNOS:
            raise
        if rank == "0":
            work = where_the_work_is()
            print(
                f"error: {os.strerror(err.errno)} while writing {err.filename or 'the output'}: free space (or pass "
                f"--output_dir on another disk) and run the command again" + (f"; {work}." if work else "."),
                file=sys.stderr,
            )
        sys.exit(1)
    except BaseException as err:
        if isinstance(err, (SystemExit, KeyboardInterrupt)) or rank != "0":
            raise
        work = where_the_work_is()
        if work:  # a bug after training: the traceback follows, but the user learns the training is not lost
            print(f"note: {work}; the failure below came after that.", file=sys.stderr)
        raise
    finally:
        release_output_dirs()
    _release_process_group()


def _release_process_group() -> None:
    """Destroy the default process group once the recipe has finished, while Python is still whole.

    Left to interpreter shutdown, a gloo group still referenced by DDP can be freed after its
    tensors' owners are gone and abort the process ("terminate called without an active exception")
    even though the run succeeded. Only after success: a rank that failed may leave the others
    inside a collective, where a destroy would hang.
    """
    import gc

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        gc.collect()  # the Trainer and its DDP wrapper are garbage now; drop their hold on the group
        dist.barrier()
        dist.destroy_process_group()
