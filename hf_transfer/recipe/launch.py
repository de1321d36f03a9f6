"""Running a recipe's `main`: user errors as one line and exit 2, a full disk as one line and exit 1, the CPU
processes `accelerate launch --cpu --num_processes N` asked for, and a clean end of the process group."""

from __future__ import annotations

import errno
import os
import sys
from typing import Any, Callable

from ..cpu_processes import relaunch_cpu_processes, requested_cpu_processes
from ..errors import HfTransferError
from .run_guard import release_output_dirs, where_the_work_is

__all__ = ["run_recipe"]

_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}  # no space, quota, read-only: the disk, not the code


def run_recipe(main: Callable[[], Any]) -> None:
    """Run a recipe's `main`; a user error ends with its message and exit code 2, not a traceback.

    Under `accelerate launch --cpu --num_processes N` (N > 1), which accelerate runs as a single
    process unless mpirun is configured, the recipe starts the N processes itself
    (`hf_transfer.cpu_processes`) and exits with their status. A finished run releases its process group
    before Python exits.
    """
    requested = requested_cpu_processes()
    if requested > 1:  # a recipe that did not call `start_requested_cpu_processes` before its imports
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
