"""How an image classifier's new head starts (`--head_init` of `recipes/finetune.py`), and `HeadInitArguments`.

`new`: the stock random initialisation. `text`: the text prior: the head's row for class c is the aligned text
embedding of its prompt, brought back through the image projection (`W = s * T P_v / E|P_v h|`, with T the (C, P)
normalised prompt embeddings, P_v the (P, D) visual projection, s the aligned logit scale), so before any training
the classifier *is* the dual encoder's zero-shot classifier, and few labels refine it instead of starting from
chance (the zero-shot head init of LP-FT / WiSE-FT / FLYP-style fine-tuning).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .._registry import LazyReference, Registry
from ..errors import ConfigError

__all__ = ["HeadInitEntry", "HEAD_INITS", "HeadInitArguments"]


@dataclass(frozen=True)
class HeadInitEntry:
    """A way to start the new head.

    Args:
        name: its `--head_init` value.
        description: one line for `--help`.
        apply: `apply(model, pixel_values, label_names, args)`, setting the head in place; None keeps it.
        needs_model: it reads `--head_init_model`.
    """

    name: str
    description: str
    apply: Optional[LazyReference] = None
    needs_model: bool = False


HEAD_INITS: Registry[HeadInitEntry] = Registry("head initialisation", "--head_init")
HEAD_INITS.register(HeadInitEntry("new", "the stock random initialisation"))
HEAD_INITS.register(
    HeadInitEntry(
        "text",
        "rows from the class names' text embeddings of an aligned dual encoder (--head_init_model): the zero-shot "
        "classifier, fine-tuned",
        apply=LazyReference("hf_transfer.alignment.text_prior:apply_text_prior"),
        needs_model=True,
    )
)


@dataclass
class HeadInitArguments:
    """How the new classification head starts.

    Args:
        head_init (`str`, defaults to `"new"`): a name of `HEAD_INITS`: `new` or `text` (the text prior).
        head_init_model (`str`, *optional*): with `text`: the folder `recipes/align.py` wrote. `--model_name_or_path`
            is then its image tower, `<that folder>/vision_tower`.
        head_init_template (`str`, *optional*): the prompt of a class name; default: the aligned run's
            `caption_template`.
    """

    head_init: str = field(
        default="new",
        metadata={
            "help": "; ".join(f"{e.name}: {e.description}" for e in HEAD_INITS.entries())
            + ". Default new. text needs --model_name_or_path <aligned>/vision_tower (image classification, "
            "full or lora)."
        },
    )
    head_init_model: Optional[str] = field(
        default=None, metadata={"help": "With --head_init text: the output folder of recipes/align.py."}
    )
    head_init_template: Optional[str] = field(
        default=None,
        metadata={"help": "With --head_init text: the class-name prompt. Default: the aligned run's caption_template."},
    )

    def __post_init__(self) -> None:
        entry = HEAD_INITS.get(self.head_init)
        if entry.needs_model:
            if not self.head_init_model:
                raise ConfigError(
                    f"--head_init {self.head_init} needs --head_init_model DIR (an output folder of recipes/align.py)."
                )
            if not (Path(self.head_init_model) / "config.json").is_file():
                raise ConfigError(
                    f"--head_init_model {self.head_init_model!r} is not a saved model folder (no config.json); pass the "
                    "output folder of recipes/align.py."
                )
        elif self.head_init_model or self.head_init_template:
            raise ConfigError(
                f"--head_init_model / --head_init_template apply to --head_init text; drop them (got --head_init "
                f"{self.head_init})."
            )

    def check_run(self, strategy: Any, task: str, modality: str) -> None:
        """The text prior starts the head of a single-label image classifier that fine-tuning trains (a probe fits
        its own head from scratch)."""
        from ..tasks import TASKS

        # The aligned image tower is the only tower a prior can start: the modality is the concept, not a kind.
        if modality != "vision" or not TASKS.get(task).one_class_per_row:
            raise ConfigError(
                f"--head_init {self.head_init} starts an image classifier's head; this run is {modality} {task}. Drop "
                "--head_init, or classify images with one label each."
            )
        if not strategy.finetunes or strategy.head_from_probe:
            raise ConfigError(
                f"--head_init {self.head_init} starts the head that fine-tuning trains; --strategy {strategy.name} "
                "fits its head as a probe. Use --strategy full or lora."
            )

    @property
    def entry(self) -> HeadInitEntry:
        return HEAD_INITS.get(self.head_init)

    def template(self) -> str:
        """The class-name prompt: given, else the aligned run's `caption_template`, else CLIP's."""
        if self.head_init_template:
            return self.head_init_template
        results = Path(self.head_init_model or "") / "all_results.json"
        if results.is_file():
            return json.loads(results.read_text()).get("caption_template") or "a photo of a {}."
        return "a photo of a {}."
