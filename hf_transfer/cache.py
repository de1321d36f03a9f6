"""The toolkit's own cache folder (converted built-in models, extracted probe features), and what a cache that
cannot be written is reported as."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Optional, Union

__all__ = ["default_cache_dir", "cache_write_problem"]

# Permission, read-only file system, full disk or quota: the folder cannot take the cache, the data is not at fault.
_WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def default_cache_dir() -> Path:
    """The toolkit's own cache (converted models, extracted features): $HF_TRANSFER_CACHE or ~/.cache/hf_transfer."""
    root = os.environ.get("HF_TRANSFER_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
    return Path(xdg) / "hf_transfer"


def cache_write_problem(err: BaseException, what: str, folder: Union[str, os.PathLike], fix: str) -> Optional[str]:
    """One line saying why cache `folder` (`what`: "the datasets cache") cannot be written and what to change, or
    None when `err` is not a permission, read-only or full-disk error.

    Readers wrap these errors in messages about the data ("check that the file is valid csv") or about the output
    disk, which send the user to the wrong place. `fix` names the flag or variable that moves the cache.
    """
    if not isinstance(err, OSError) or err.errno not in _WRITE_ERRNOS:
        return None
    failed = f" at '{err.filename}'" if err.filename and os.fspath(err.filename) != os.fspath(folder) else ""
    full = "free space there or " if err.errno in _FULL_ERRNOS else ""
    return f"Cannot write {what} '{folder}': {os.strerror(err.errno)}{failed}. To fix it, {full}{fix}."
