"""The CPU processes `accelerate launch --cpu --num_processes N` asks for, started before a recipe's heavy imports.

accelerate starts one process for that command (see `requested_cpu_processes`); that process only starts the N
workers and waits for them. Each worker imports torch, transformers and the rest itself, so the starter must not:
this module uses the standard library only (and PyYAML to read an accelerate config file), and recipes call `start_requested_cpu_processes()` before their other
imports. That saves a whole import of the stack at every multi-process start: a 2-process run that stops at a
misspelled flag took 30 s here before, 17 s after (2 cores).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Optional

__all__ = [
    "requested_cpu_processes",
    "relaunch_cpu_processes",
    "start_requested_cpu_processes",
    "cpu_threads_to_use",
    "image_dataloader_workers",
]


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


def _launcher_environment() -> dict[str, str]:
    """The environment of the parent `accelerate launch` process: what the user exported, before accelerate's own
    settings for this process."""
    try:
        with open(f"/proc/{os.getppid()}/environ", "rb") as f:
            pairs = [item.decode(errors="replace").split("=", 1) for item in f.read().split(b"\0") if b"=" in item]
    except OSError:
        return {}
    return dict(pairs)


def cpu_threads_to_use() -> Optional[int]:
    """Torch threads for this process when `accelerate launch` pinned it to one thread that nobody asked for.

    accelerate exports OMP_NUM_THREADS=1 to the process it starts unless `--cpu` is given (then it divides the cores
    among the processes) or `--num_cpu_threads_per_process` / the user's OMP_NUM_THREADS say otherwise; so
    `accelerate launch recipes/finetune.py` on a CPU machine trains on one core. The rule here: a choice of the user
    (the flag, or OMP_NUM_THREADS in the launcher's environment) stands; otherwise a process gets the cores it may
    run on divided by the processes on this machine. None: leave torch's setting as it is.
    """
    if os.environ.get("OMP_NUM_THREADS") != "1":
        return None
    parent = _launcher_command_line()
    if not parent or any(a.startswith("--num_cpu_threads_per_process") for a in parent):
        return None
    if "OMP_NUM_THREADS" in _launcher_environment():
        return None
    threads = _cores_per_local_process()
    return threads if threads > 1 else None


def _cores_per_local_process() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE") or os.environ.get("WORLD_SIZE") or 1)
    return cores // max(local_processes, 1)


def image_dataloader_workers(on_gpu: bool) -> int:
    """DataLoader workers that decode and augment images when `--dataloader_num_workers` is not given.

    On a GPU the cores are free while the accelerator computes: a worker per core of this process but one, at most 4
    (timm's default), keeps images coming. On CPU the training step already runs on every core, and a worker only
    competes with it: measured on 2 cores (benchmarks/augmented_training_speed.py), EfficientNet-Lite0 with
    RandAugment trains at 0.95 of the speed on ready tensors in the training process and 0.70 with one worker, so a
    CPU run loads in the training process (0).
    """
    if not on_gpu:
        return 0
    return max(1, min(4, _cores_per_local_process() - 1))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def requested_cpu_processes() -> int:
    """How many processes `accelerate launch --cpu --num_processes N` asked for, when it started only one.

    accelerate (1.x) starts several CPU processes only through mpirun; without it, its simple launcher
    runs the script once, with `MASTER_ADDR` set but no `WORLD_SIZE`. The requested N is then only
    visible on the launcher's own command line, or in the config file it read.
    """
    if os.environ.get("WORLD_SIZE") or os.environ.get("RANK") or not os.environ.get("MASTER_ADDR"):
        return 1
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() not in ("1", "true", "yes"):
        return 1
    parent = _launcher_command_line()
    if not parent:
        return 1
    value = _flag_value(parent, "--num_processes")
    if value is None:  # from the config file, as accelerate read it: --config_file, else `accelerate config`'s
        value = str(_launcher_config(parent).get("num_processes", 1))
    return int(value) if value.isdigit() else 1


def _flag_value(command_line: list[str], flag: str) -> Optional[str]:
    for i, arg in enumerate(command_line):
        if arg == flag:
            return command_line[i + 1] if i + 1 < len(command_line) else None
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _launcher_config(command_line: list[str]) -> dict:
    """The accelerate config file the launcher read: `--config_file`, else the default one `accelerate config`
    writes (under $HF_HOME/accelerate of the launcher's environment); {} when there is none."""
    path = _flag_value(command_line, "--config_file")
    if path is None:
        home = _launcher_environment().get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
        path = os.path.join(home, "accelerate", "default_config.yaml")
    elif not os.path.isabs(path):
        try:
            path = os.path.join(os.readlink(f"/proc/{os.getppid()}/cwd"), path)
        except OSError:
            pass
    if not os.path.isfile(path):
        return {}
    import yaml  # PyYAML: small, and only when a config file is there

    with open(path, encoding="utf-8") as f:
        loaded = json.load(f) if path.endswith(".json") else yaml.safe_load(f)
    return loaded if isinstance(loaded, dict) else {}


def relaunch_cpu_processes(num_processes: int) -> int:
    """Start `num_processes` copies of this script as one DDP group over gloo and return their exit status.

    torch's launcher (`torch.distributed.run`) would do, but it turns a worker's clear user error (exit 2) into
    its own exit 1 and a `ChildFailedError` traceback. Here each rank gets torch's environment contract (RANK,
    LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT); when one fails the others are stopped, and the status is
    the first failure's, so a bad input still exits 2 with its one line (printed by rank 0).
    """
    print(
        f"accelerate started 1 process where {num_processes} CPU processes were asked for; "
        f"starting {num_processes} CPU processes (DDP over gloo).",
        file=sys.stderr,
    )
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


def start_requested_cpu_processes() -> None:
    """Under `accelerate launch --cpu --num_processes N` (N > 1): start the N workers, wait, and exit with their
    status. Anywhere else (one process, a worker, a GPU launch, plain `python`): return at once."""
    sharding = _sharding_asked_on_cpu()
    if sharding is not None:
        print(
            f"error: the accelerate config asks for {sharding} and the launch for CPU: accelerate shards only on GPUs "
            f"(and other accelerators), so this run would train with DDP, every process holding the whole model. "
            "Launch without --cpu on GPUs, or use recipes/accelerate_configs/cpu_ddp_2_processes.yaml on CPU.",
            file=sys.stderr,
        )
        sys.exit(2)
    requested = requested_cpu_processes()
    if requested > 1:
        sys.exit(relaunch_cpu_processes(requested))


def _sharding_asked_on_cpu() -> Optional[str]:
    """`FSDP` / `DeepSpeed` when `accelerate launch --cpu` read a config file that asks for it: accelerate then runs
    its simple launcher, which drops the sharding settings without a word."""
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() not in ("1", "true", "yes") or os.environ.get("RANK"):
        return None
    parent = _launcher_command_line()
    if not parent:
        return None
    distributed_type = str(_launcher_config(parent).get("distributed_type", "")).upper()
    return {"FSDP": "FSDP", "DEEPSPEED": "DeepSpeed"}.get(distributed_type)
