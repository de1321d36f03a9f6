"""What every contrastive loss shares: its temperature and the cross-process gather of its inputs."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from ..distributed import gather_with_grad
from .temperature import Temperature

__all__ = ["ContrastiveLoss", "rows_at"]


def rows_at(offset: int, count: int, device: torch.device) -> torch.Tensor:
    return torch.arange(offset, offset + count, device=device)


class ContrastiveLoss(nn.Module):
    """Shared parts: the temperature and the cross-process gather."""

    def __init__(
        self,
        temperature: float = 0.1,
        learnable_temperature: bool = False,
        min_temperature: float = 0.01,
        gather_across_processes: bool = True,
    ):
        super().__init__()
        self.temperature = Temperature(temperature, learnable_temperature, min_temperature)
        self.gather_across_processes = gather_across_processes

    def _gather(self, *tensors: Optional[torch.Tensor]) -> tuple[list[Optional[torch.Tensor]], int, int]:
        """Gather the (B, ...) tensors of all processes in one call; returns them, the offset and B."""
        present = [t for t in tensors if t is not None]
        local_size = present[0].shape[0]
        if not self.gather_across_processes:
            return list(tensors), 0, local_size
        widths = [t.shape[1] if t.ndim > 1 else 1 for t in present]
        dtype = torch.promote_types(present[0].dtype, torch.float32)
        packed = torch.cat([t.reshape(local_size, -1).to(dtype) for t in present], dim=1)  # (B, sum widths)
        gathered, offset = gather_with_grad(packed)
        pieces = list(torch.split(gathered, widths, dim=1))
        out: list[Optional[torch.Tensor]] = []
        for t in tensors:
            if t is None:
                out.append(None)
                continue
            piece = pieces.pop(0)
            out.append(piece.reshape(-1, *t.shape[1:]).to(t.dtype))
        return out, offset, local_size

    def get_config_dict(self) -> dict[str, Any]:
        return {**self.temperature.get_config_dict(), "gather_across_processes": self.gather_across_processes}
