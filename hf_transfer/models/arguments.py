"""`ModelArguments`: which pretrained model to load, from where, and how far to trust it. Shared by every recipe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

__all__ = ["ModelArguments"]


@dataclass
class ModelArguments:
    """What to load. Shared by every recipe.

    Args:
        model_name_or_path (`str`): a built-in alias (`minilm`, `efficientnet-lite0`), a local
            directory saved with `save_pretrained`, or a Hub model id.
        cache_dir (`str`, *optional*): where Hub downloads are stored.
        model_revision (`str`): branch, tag or commit of a Hub model.
        token (`str`, *optional*): Hub token; by default the saved login (`hf auth login`) is used.
        trust_remote_code (`bool`): run code from the model repository. Off unless you trust it.
        ignore_mismatched_sizes (`bool`): replace a classification head whose label count differs
            from the data's.
    """

    model_name_or_path: str = field(
        default="minilm",
        metadata={
            "help": "A built-in alias (minilm, efficientnet-lite0), a local directory, or a Hub model id. "
            "Modality (text or vision) is read from the model's config."
        },
    )
    cache_dir: Optional[str] = field(
        default=None, metadata={"help": "Where to store models downloaded from the Hub (default: the HF cache)."}
    )
    model_revision: str = field(
        default="main", metadata={"help": "The model version to use: a branch name, tag or commit id."}
    )
    token: Optional[str] = field(
        default=None,
        metadata={"help": "Hub token for private models. Default: the token saved by `hf auth login`, if any."},
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={"help": "Allow custom model code from the Hub repository. Only for repositories you trust."},
    )
    ignore_mismatched_sizes: bool = field(
        default=False,
        metadata={
            "help": "Replace an existing classification head whose number of labels differs from the data's. "
            "Without it such a mismatch is an error."
        },
    )
