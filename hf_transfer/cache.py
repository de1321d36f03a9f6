"""The toolkit's own cache folder (converted built-in models, extracted probe features)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_cache_dir"]


def default_cache_dir() -> Path:
    """The toolkit's own cache (converted models, extracted features): $HF_TRANSFER_CACHE or ~/.cache/hf_transfer."""
    root = os.environ.get("HF_TRANSFER_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
    return Path(xdg) / "hf_transfer"
