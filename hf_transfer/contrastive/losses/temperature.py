"""`Temperature`: the softmax temperature of a contrastive loss, fixed or learnable (CLIP's clamped logit scale)."""

from __future__ import annotations

import math
from typing import Any, Union

import torch
from torch import nn

from ...constants import MIN_TEMPERATURE
from ...errors import ConfigError

__all__ = ["Temperature", "Scale"]

Scale = Union[float, torch.Tensor]


class Temperature(nn.Module):
    """The softmax temperature tau of a contrastive loss, fixed or learnable.

    Logits are `cos(z_i, z_j) / tau`, i.e. `cos * scale` with `scale = 1 / tau`. A learnable temperature
    is CLIP's `logit_scale`: the parameter is `log(1 / tau)`, initialised from `temperature`, and the
    scale used is clamped to `[1, 1 / min_temperature]` (tau in `[min_temperature, 1]`; CLIP's 100 is
    `min_temperature=0.01`), so it can neither collapse to a hard max nor blow up the logits. Outside the
    clamp the gradient is zero, so the parameter stops there. Exclude it from weight decay (the
    `ContrastiveTrainer` does), or decay pulls it towards tau = 1.

    Args:
        temperature (`float`): tau, or its initial value when learnable. At least `MIN_TEMPERATURE` (1e-3).
        learnable (`bool`): learn tau with the model.
        min_temperature (`float`): lower clamp of a learnable tau; in `(0, temperature]`.

    Raises:
        ConfigError: near-zero or non-finite temperature, or `min_temperature` out of range.
    """

    def __init__(self, temperature: float = 0.1, learnable: bool = False, min_temperature: float = 0.01):
        super().__init__()
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature)) or temperature < MIN_TEMPERATURE:
            raise ConfigError(
                f"temperature must be a finite number >= {MIN_TEMPERATURE}; got {temperature!r}. A near-zero "
                "temperature turns the softmax into a hard max and overflows the logits: use 0.05-0.5 "
                "(SimCSE 0.05, SupCon 0.1, SimCLR 0.1-0.5)."
            )
        if learnable and not 0.0 < min_temperature <= temperature:
            raise ConfigError(
                f"min_temperature must be in (0, temperature={temperature}] for a learnable temperature; got "
                f"{min_temperature}. CLIP uses 0.01 (logit scale at most 100)."
            )
        self.initial_temperature = float(temperature)
        self.learnable = bool(learnable)
        self.min_temperature = float(min_temperature)
        if self.learnable:
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        else:
            self.register_parameter("logit_scale", None)

    def scale(self) -> Scale:
        """`1 / tau` (a tensor when learnable, so gradients reach `logit_scale`)."""
        if not self.learnable:
            return 1.0 / self.initial_temperature
        return self.logit_scale.exp().clamp(min=1.0, max=1.0 / self.min_temperature)

    @property
    def value(self) -> float:
        """The temperature in use now, as a number."""
        scale = self.scale()
        return float(1.0 / (scale.detach() if isinstance(scale, torch.Tensor) else scale))

    def get_config_dict(self) -> dict[str, Any]:
        config = {"temperature": self.initial_temperature, "learnable_temperature": self.learnable}
        if self.learnable:
            config["min_temperature"] = self.min_temperature
        return config

    def extra_repr(self) -> str:
        return f"temperature={self.value:.4g}, learnable={self.learnable}"
