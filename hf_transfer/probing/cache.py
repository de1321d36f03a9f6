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
from safetensors import safe_open
from safetensors.torch import save_file

from ..cache import cache_write_problem, default_cache_dir

__all__ = ["FeatureCache", "tensor_checksum"]

logger = logging.getLogger(__name__)

_CHECKSUM_PREFIX = "sha256:"  # metadata key of each tensor's checksum: "sha256:features"


def tensor_checksum(tensor: torch.Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes: a file whose rows were moved, or bytes changed, no longer
    matches, even when it is still a valid file of the same size."""
    digest = hashlib.sha256(f"{tensor.dtype}:{tuple(tensor.shape)}:".encode())
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()


class FeatureCache:
    """Extracted features on disk, one safetensors file per (model, data, preprocessing) key.

    Files are written to a temporary name and renamed, so an interrupted extraction never leaves a
    truncated file that a later run would trust; every tensor is stored with its checksum, and a file whose
    tensors no longer match theirs is a miss (the features are extracted again), never used.
    """

    def __init__(self, cache_dir: Optional[str | os.PathLike] = None):
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir() / "features"
        self._unwritable = False  # set by the first failed write: the folder is not tried (nor reported) again

    @staticmethod
    def make_key(**parts: Any) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def path(self, key: str) -> Path:
        return self.cache_dir / f"{key}.safetensors"

    def load(self, key: str) -> Optional[dict[str, torch.Tensor]]:
        """The cached tensors of `key`, or None: absent, unreadable, or not what was written (checksums)."""
        file = self.path(key)
        if not file.is_file():
            return None
        try:
            with safe_open(str(file), framework="pt") as f:
                metadata = f.metadata() or {}
                tensors = {name: f.get_tensor(name) for name in f.keys()}
        except Exception as err:  # a corrupt file is a cache miss, not a failure
            logger.warning("Ignoring unreadable cached features %s (%s); extracting them again.", file, err)
            return None
        stored = {k[len(_CHECKSUM_PREFIX) :]: v for k, v in metadata.items() if k.startswith(_CHECKSUM_PREFIX)}
        if set(stored) == set(tensors):
            changed = sorted(name for name, tensor in tensors.items() if stored[name] != tensor_checksum(tensor))
        else:  # written without checksums (an older version), or a tensor added or removed since
            changed = sorted(set(tensors) ^ set(stored))
        if changed:
            logger.warning(
                "Ignoring cached features %s: %s no longer match%s the checksum written with them (the file changed, "
                "or was written without checksums); extracting them again.",
                file,
                ", ".join(changed),
                "es" if len(changed) == 1 else "",
            )
            return None
        return tensors

    def save(
        self, key: str, tensors: dict[str, torch.Tensor], metadata: Optional[dict[str, str]] = None
    ) -> Optional[Path]:
        """Write `tensors` (with their checksums) under `key`; the path, or None when the folder cannot be written
        (one warning line names the folder, the cause and the setting to change: the run goes on uncached)."""
        if self._unwritable:
            return None
        tensors = {k: v.contiguous() for k, v in tensors.items()}
        metadata = {**(metadata or {}), **{_CHECKSUM_PREFIX + k: tensor_checksum(v) for k, v in tensors.items()}}
        tmp = None
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{key}-", suffix=".tmp", dir=self.cache_dir)
            os.close(fd)
            save_file(tensors, tmp, metadata=metadata)
            os.replace(tmp, self.path(key))
        except OSError as err:
            problem = cache_write_problem(
                err,
                "the feature cache",
                self.cache_dir,
                "pass --feature_cache_dir (finetune) or --cache_dir (hf-transfer rank) with a writable folder, or set "
                "HF_TRANSFER_CACHE to one; the features of this run are not cached",
            )
            if problem is None:
                raise
            logger.warning(problem)
            self._unwritable = True
            return None
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.remove(tmp)
        return self.path(key)
