"""What the user sets for pair training (`--strategy contrastive_probe`): imports no implementation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..errors import ConfigError

__all__ = ["PairArguments", "auto_pair_steps"]

# Pair-training steps per batch-worth of rows, and the floor: small sets need several passes to move the embedding,
# large ones one or two (see benchmarks/RESULTS.md, "Few labels").
STEPS_PER_BATCH_OF_ROWS = 2
MIN_PAIR_STEPS = 60


def auto_pair_steps(num_rows: int, batch_size: int) -> int:
    """The default number of pair-training steps: it grows with the rows (a budget that scales with the data)."""
    return max(MIN_PAIR_STEPS, STEPS_PER_BATCH_OF_ROWS * -(-num_rows // batch_size))


@dataclass
class PairArguments:
    """Pair training of `contrastive_probe`: the backbone learns from every pair of rows in a batch.

    Args:
        pair_steps (`int`, *optional*): optimizer steps; default `auto_pair_steps` of the training rows.
        pair_batch_size (`int`): rows per step (every pair among them is scored).
        pair_learning_rate (`float`): the backbone's learning rate (AdamW, linear decay after warmup).
        pair_warmup_ratio (`float`): part of the steps the learning rate warms up over.
    """

    pair_steps: Optional[int] = field(
        default=None,
        metadata={"help": "Pair-training steps. Default: grows with the training rows (at least 60)."},
    )
    pair_batch_size: int = field(default=16, metadata={"help": "Rows per pair-training step (all pairs scored)."})
    pair_learning_rate: float = field(default=2e-5, metadata={"help": "Learning rate of pair training."})
    pair_warmup_ratio: float = field(default=0.1, metadata={"help": "Warmup part of the pair-training steps."})

    def __post_init__(self) -> None:
        if self.pair_steps is not None and self.pair_steps <= 0:
            raise ConfigError(f"--pair_steps must be positive; got {self.pair_steps}.")
        if self.pair_batch_size < 2:
            raise ConfigError(f"--pair_batch_size must be at least 2 (a pair); got {self.pair_batch_size}.")
        if self.pair_learning_rate <= 0:
            raise ConfigError(f"--pair_learning_rate must be positive; got {self.pair_learning_rate}.")
        if not 0.0 <= self.pair_warmup_ratio < 1.0:
            raise ConfigError(f"--pair_warmup_ratio must be in [0, 1); got {self.pair_warmup_ratio}.")

    def steps_for(self, num_rows: int) -> int:
        return self.pair_steps or auto_pair_steps(num_rows, self.pair_batch_size)
