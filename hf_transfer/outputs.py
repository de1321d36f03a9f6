"""Writing results so that no run loses work: atomic files, atomic model folders, resumable checkpoints, and a write
the disk refuses (full, over quota, read-only, not permitted) as one line naming the folder and the fix
(`OutputWriteError`), with nothing half-written left that could pass for a saved model."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from .errors import HfTransferError

__all__ = [
    "write_json_atomic",
    "publish_directory",
    "find_last_checkpoint",
    "OutputWriteError",
    "refused_write_errno",
    "write_errors_as_one_line",
    "remove_incomplete_checkpoints",
]

logger = logging.getLogger(__name__)

# Why a disk refuses a write, by errno: what the user can change, not a bug in the code.
_REFUSED_WRITES = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
# safetensors (Rust) words an I/O error `IoError(Os { code: 28, ... })` or `... (os error 28)`; torch's zip writer
# says only that the write failed (`PytorchStreamWriter failed writing file`, `unexpected pos`), which on a disk that
# takes other writes means it ran out of room.
_OS_ERROR_CODE = re.compile(r"(?:os error |Os \{ code: )(\d+)")
_TORCH_WRITE_FAILED = re.compile(r"PytorchStreamWriter failed|file write failed|unexpected pos \d+")


class OutputWriteError(HfTransferError):
    """The disk refused to write a run's output (full, over quota, read-only, not permitted)."""


def refused_write_errno(err: BaseException) -> Optional[int]:
    """The errno of a write the disk refused (`_REFUSED_WRITES`), from an `OSError` or from the errors safetensors and
    torch raise instead (their message, or the error they chain); None for any other error."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in _REFUSED_WRITES:
            return err.errno
        if not isinstance(err, OSError):
            code = _OS_ERROR_CODE.search(str(err))
            if code is not None and int(code.group(1)) in _REFUSED_WRITES:
                return int(code.group(1))
            if "No space left on device" in str(err) or _TORCH_WRITE_FAILED.search(str(err)):
                return errno.ENOSPC
        err = err.__cause__ or err.__context__
    return None


def _is_inside(filename: Any, folder: Path) -> bool:
    try:
        return Path(os.fsdecode(filename)).resolve().is_relative_to(folder.resolve())
    except (TypeError, ValueError, OSError):
        return False


@contextlib.contextmanager
def write_errors_as_one_line(
    folder: str | os.PathLike,
    what: str,
    *,
    cleanup: Optional[Callable[[], Any]] = None,
    note: Optional[Callable[[], Optional[str]]] = None,
) -> Iterator[None]:
    """A write into `folder` that the disk refuses becomes one `OutputWriteError` line: what could not be written,
    where, why, and the fix (free space or another --output_dir; a writable folder). `cleanup()` first removes what
    the failed write left (partial files must not look like a saved model); `note()` may add where the run's work is
    safe. Errors of files outside `folder` (a cache elsewhere) and every other error pass unchanged."""
    try:
        yield
    except HfTransferError:
        raise  # already one line (an inner write's, or the user's error)
    except Exception as err:
        code = refused_write_errno(err)
        filename = getattr(err, "filename", None)
        if code is None or (filename is not None and not _is_inside(filename, Path(folder))):
            raise
        if cleanup is not None:
            cleanup()
        fix = (
            "free space on that disk (or pass --output_dir on another disk) and run the command again"
            if code in _SPACE_ERRNOS
            else f"make {folder} writable (or pass another --output_dir) and run the command again"
        )
        extra = note() if note is not None else None
        raise OutputWriteError(
            f"Could not write {what} in {folder} ({_REFUSED_WRITES[code]}"
            + (f", writing {os.fsdecode(filename)}" if filename is not None else "")
            + ")"
            + ("; nothing half-written was left there" if cleanup is not None else "")
            + f". To fix: {fix}"
            + (f"; {extra}." if extra else ".")
        ) from err


_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _finite_or_none(obj: Any) -> Any:
    """NaN / inf (an undefined statistic, e.g. the interval of one value) as JSON null: strict parsers reject NaN."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    return obj


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write JSON to a temporary file in the same folder, then rename it over `path` (non-finite floats as null)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are as readable as any file the user writes
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_finite_or_none(obj), f, indent=2, sort_keys=True, default=str)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def publish_directory(
    output_dir: str | os.PathLike,
    write: Callable[[str], None],
    subdir: Optional[str] = None,
    *,
    what: str = "the model",
    note: Optional[Callable[[], Optional[str]]] = None,
) -> Path:
    """Let `write(tmp_dir)` fill a staging folder, then move each file into place with `os.replace`.

    A crash while writing leaves the previous files in `output_dir` untouched; each final file
    appears whole. `subdir` publishes into `output_dir/subdir` (e.g. `merged`). A write the disk refuses is one
    `OutputWriteError` naming `what` and the folder (`note()` may add where the run's work is safe); the staging
    folder goes, and so do the files of this publish already moved, so no folder looks whole that is not.
    """
    target = Path(output_dir) / subdir if subdir else Path(output_dir)
    moved: list[Path] = []

    def remove_moved() -> None:
        for path in moved:
            path.unlink(missing_ok=True)

    with write_errors_as_one_line(target, what, cleanup=remove_moved, note=note):
        target.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target))
        try:
            write(str(staging))
            for src in sorted(staging.rglob("*")):
                if src.is_file():
                    dst = target / src.relative_to(staging)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(src, dst)
                    moved.append(dst)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def remove_incomplete_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Delete the `checkpoint-N` folders of `output_dir` without a readable `trainer_state.json` (written last): a
    checkpoint cut off by a failed write, which must not pass for one to resume or load. Returns those removed."""
    root = Path(output_dir)
    removed = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if path.is_dir() and _CHECKPOINT_RE.match(path.name) and not _readable_json(path / "trainer_state.json"):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _readable_json(path: Path) -> bool:
    try:
        json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return True


def find_last_checkpoint(output_dir: str | os.PathLike) -> Optional[str]:
    """The newest complete `checkpoint-N` in `output_dir`, or None.

    A checkpoint counts as complete when its `trainer_state.json` (written last by `Trainer`) parses;
    a folder left half-written by a killed run is skipped rather than crashing the resume.
    """
    root = Path(output_dir)
    if not root.is_dir():
        return None
    candidates = sorted(
        (int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _CHECKPOINT_RE.match(p.name))
    )
    for _step, path in reversed(candidates):
        if not _readable_json(path / "trainer_state.json"):
            logger.warning("Skipping incomplete checkpoint %s", path)
            continue
        return str(path)
    return None
