"""The pooling modes by name (`--pooling`): how token states become one embedding, one entry each.

Argument dataclasses list and check the names here without importing torch; `hf_transfer.models.pooling` holds
the tensor code each entry names, and the sentence-transformers export writes each entry's config key. Adding a
mode is its function in `pooling` plus one entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .._registry import LazyReference, Registry

__all__ = ["PoolingMode", "POOLING_MODES", "CLASSIFIER_POOLINGS", "HEAD_POOLING"]


@dataclass(frozen=True)
class PoolingMode:
    """A way to pool token states `(B, T, D)` into `(B, D)`.

    Args:
        name: its `--pooling` value.
        description: one line for the docs.
        pool: `(hidden, attention_mask) -> (B, D)`; None for `pooler`, the model's own `pooler_output`.
        sentence_transformers_key: the flag of sentence-transformers' Pooling config that means this mode; None
            where that format has none (`pooler` is exported as a Dense module instead).
    """

    name: str
    description: str
    pool: Optional[LazyReference]
    sentence_transformers_key: Optional[str]

    @property
    def reads_pooler_output(self) -> bool:
        """It reads the model's own `pooler_output` instead of pooling token states."""
        return self.pool is None


POOLING_MODES: Registry[PoolingMode] = Registry("pooling mode", "--pooling")
for _name, _description, _key in (
    ("mean", "the mean of the attended tokens", "pooling_mode_mean_tokens"),
    ("cls", "the first attended token", "pooling_mode_cls_token"),
    ("max", "the element-wise maximum over the attended tokens", "pooling_mode_max_tokens"),
    ("mean_sqrt_len", "the sum of the attended tokens over the square root of their count", "pooling_mode_mean_sqrt_len_tokens"),
    ("weightedmean", "a position-weighted mean (later tokens weigh more), as sentence-transformers", "pooling_mode_weightedmean_tokens"),
    ("lasttoken", "the last attended token, either padding side (decoder embedders)", "pooling_mode_lasttoken"),
):  # fmt: skip
    POOLING_MODES.register(
        PoolingMode(_name, _description, LazyReference(f"hf_transfer.models.pooling:pool_{_name}"), _key)
    )
POOLING_MODES.register(
    PoolingMode(
        "pooler", "the model's own pooler_output (BERT's dense + tanh, a vision backbone's pooled map)", None, None
    )
)

# What a classifier reads (`--pooling` of finetune, maml, domain_adapt): the stock transformers head, or a mode that
# sentence-transformers' format can save.
HEAD_POOLING = "head"
CLASSIFIER_POOLINGS: tuple[str, ...] = (HEAD_POOLING,) + tuple(
    mode.name for mode in POOLING_MODES.entries() if mode.sentence_transformers_key is not None
)
