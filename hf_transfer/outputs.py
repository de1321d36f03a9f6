"""Writing results so that no run loses work: atomic files, atomic model folders, resumable checkpoints."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

__all__ = ["write_json_atomic", "publish_directory", "find_last_checkpoint"]

logger = logging.getLogger(__name__)

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
    output_dir: str | os.PathLike, write: Callable[[str], None], subdir: Optional[str] = None
) -> Path:
    """Let `write(tmp_dir)` fill a staging folder, then move each file into place with `os.replace`.

    A crash while writing leaves the previous files in `output_dir` untouched; each final file
    appears whole. `subdir` publishes into `output_dir/subdir` (e.g. `merged`).
    """
    target = Path(output_dir) / subdir if subdir else Path(output_dir)
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target))
    try:
        write(str(staging))
        for src in sorted(staging.rglob("*")):
            if src.is_file():
                dst = target / src.relative_to(staging)
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


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
        state = path / "trainer_state.json"
        try:
            json.loads(state.read_text())
        except (OSError, ValueError):
            logger.warning("Skipping incomplete checkpoint %s", path)
            continue
        return str(path)
    return None
