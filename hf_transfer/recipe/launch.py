"""Running a recipe's `main`: user errors as one line and exit 2, a full disk as one line and exit 1, the CPU
processes `accelerate launch --cpu --num_processes N` asked for, and a clean end of the process group."""

from __future__ import annotations

import errno
import os
import sys
from typing import Any, Callable

from ..errors import HfTransferError
from .run_guard import release_output_dirs, where_the_work_is

__all__ = ["run_recipe", "relaunch_cpu_processes"]

_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}  # no space, quota, read-only: the disk, not the code


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
