"""`FeatureCache`: extracted features on disk, so a second probe (another setting, a rerun) skips the forward pass."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors.torch import load_file, save_file

from ..cache import default_cache_dir

__all__ = ["FeatureCache"]

logger = logging.getLogger(__name__)


class FeatureCache:
    """Extracted features on disk, one safetensors file per (model, data, preprocessing) key.

    Files are written to a temporary name and renamed, so an interrupted extraction never leaves a
    truncated file that a later run would trust.
    """

    def __init__(self, cache_dir: Optional[str | os.PathLike] = None):
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir() / "features"

    @staticmethod
    def make_key(**parts: Any) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def path(self, key: str) -> Path:
        return self.cache_dir / f"{key}.safetensors"

    def load(self, key: str) -> Optional[dict[str, torch.Tensor]]:
        file = self.path(key)
        if not file.is_file():
            return None
        try:
            return load_file(str(file))
        except Exception as err:  # a corrupt file is a cache miss, not a failure
            logger.warning("Ignoring unreadable cached features %s (%s)", file, err)
            return None

    def save(self, key: str, tensors: dict[str, torch.Tensor], metadata: Optional[dict[str, str]] = None) -> Path:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}-", suffix=".tmp", dir=self.cache_dir)
        os.close(fd)
        try:
            save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
            os.replace(tmp, self.path(key))
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return self.path(key)
