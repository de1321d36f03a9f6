"""`RankArguments`: what `hf-transfer rank` is asked (the data comes as the recipes' `DataArguments`). Flags that
mean what a recipe's flag means carry the recipe's name (`--model_name_or_path`, `--feature_batch_size`,
`--max_seq_length`, `--cache_dir`, `--output_dir`, `--seed`); the older names stay as aliases."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..errors import ConfigError

__all__ = ["RankArguments", "SCORE_NAMES"]

SCORE_NAMES = ("logme", "h_score", "leep", "nce")  # the keys of `registry.TRANSFERABILITY_SCORES`


@dataclass
class RankArguments:
    model_name_or_path: list[str] = field(
        metadata={
            "aliases": ["--candidates"],
            "help": "Models or layers to rank (the recipes' flag, several values; --candidates is the same flag): "
            "NAME_OR_PATH (its embedding), NAME_OR_PATH@LAYER (an index into its hidden states, 0 = embeddings / "
            "stem, negative from the top), NAME_OR_PATH@all (every layer); prefix random: for the same architecture "
            "with random weights. E.g. `minilm minilm@all random:minilm`.",
        }
    )
    scores: list[str] = field(
        default_factory=lambda: list(SCORE_NAMES),
        metadata={"help": "Scores to compute: logme, h_score, leep, nce (the last two need a pretrained head)."},
    )
    rank_by: str = field(default="logme", metadata={"help": "The score the table is sorted by."})
    output_dir: Optional[str] = field(
        default=None, metadata={"help": "Where ranking.json / ranking.md go (default outputs/rank-<data>)."}
    )
    check_with_probes: bool = field(
        default=False,
        metadata={
            "help": "Also fit a linear probe on every candidate's features (train, L2 chosen on validation) and "
            "report Kendall's tau between each score and the probes' test accuracy: does the ranking hold here?"
        },
    )
    feature_batch_size: int = field(
        default=64,
        metadata={"aliases": ["--batch_size"], "help": "Rows per forward pass during extraction (as in the recipes)."},
    )
    max_seq_length: int = field(default=128, metadata={"help": "Token limit for text."})
    seed: int = field(default=0, metadata={"help": "Seed of random:-initialised candidates."})
    device: str = field(default="auto", metadata={"help": "auto (CUDA when available), cpu or cuda."})
    cache_dir: Optional[str] = field(default=None, metadata={"help": "Model and data cache directory."})

    def __post_init__(self) -> None:
        unknown = [s for s in self.scores if s not in SCORE_NAMES]
        if unknown:
            raise ConfigError(f"--scores {' '.join(unknown)}: unknown; choose from {', '.join(SCORE_NAMES)}.")
        if self.rank_by not in self.scores:
            raise ConfigError(f"--rank_by {self.rank_by} is not among --scores ({', '.join(self.scores)}).")
        if self.feature_batch_size < 1:
            raise ConfigError(f"--feature_batch_size must be at least 1; got {self.feature_batch_size}.")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"--device {self.device!r}: use auto, cpu or cuda.")
