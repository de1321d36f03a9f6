"""`AlignmentArguments`: what a user sets to align an image backbone with a text backbone (`recipes/align.py`)."""

from __future__ import annotations

import math
import string
from dataclasses import dataclass, field
from typing import Optional

from ..constants import MIN_TEMPERATURE
from ..errors import ConfigError
from .tuning import VISION_TUNINGS

__all__ = ["AlignmentArguments", "template_fields"]


def template_fields(template: str) -> list[str]:
    """The `{...}` fields of a caption template (`"a photo of a {}."` has one, unnamed)."""
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as err:
        raise ConfigError(
            f"--caption_template {template!r} is not a format string ({err}); use e.g. 'a photo of a {{}}.'"
        ) from err


@dataclass
class AlignmentArguments:
    """The two towers, the captions, how each tower is tuned, and the zero-shot evaluation.

    Args:
        vision_model_name_or_path (`str`, defaults to `"efficientnet-lite0"`):
            The image tower: a built-in alias, a folder saved with `save_pretrained` (ViT, ConvNeXt, a timm model
            saved with `timm.models.save_for_hf`, ...) or a Hub id. Its pooled output is what is projected.
        text_model_name_or_path (`str`, defaults to `"minilm"`):
            The text tower (BERT, RoBERTa, MiniLM, ...): a model whose `AutoModel` has a `pooler_output`, which
            `VisionTextDualEncoderModel` projects.
        caption_column (`str`, *optional*):
            With `--train_file`: the column holding each image's caption. Without it, captions are made from the
            class names with `caption_template` (several names of a multi-label row joined by " and ").
        caption_template (`str`, defaults to `"a photo of a {}."`):
            How a class name becomes a caption; the one `{}` is the name. Zero-shot evaluation uses it too, and it is
            what to pass as `hypothesis_template` to `pipeline("zero-shot-image-classification")`.
        held_out_classes (`list[str]`, *optional*):
            Classes kept out of alignment training (their rows leave the train and validation splits), for zero-shot
            evaluation on classes never seen, by name.
        num_held_out_classes (`int`, *optional*): instead of naming them, hold out this many classes drawn with
            `--split_seed`.
        vision_tuning (`str`, defaults to `"frozen"`): a name of `VISION_TUNINGS`: `frozen` (LiT), `lora`, `full`.
        projection_dim (`int`, defaults to 256): size of the shared embedding space (both projections).
        temperature (`float`, defaults to 0.07): softmax temperature of the symmetric in-batch loss (CLIP's
            initial 0.07); logits are cosine / temperature.
        learnable_temperature (`bool`, defaults to `True`): learn the temperature as CLIP does; the saved model's
            `logit_scale` is the learnt `log(1 / temperature)`.
        min_temperature (`float`, defaults to 0.01): lower clamp of a learnable temperature (CLIP's 100 logit scale).
        max_seq_length (`int`, defaults to 32): tokens per caption after truncation.
        image_size (`int`, *optional*): side of the square images fed to the image tower. Default: its processor's.
        zero_shot_eval (`bool`, defaults to `True`): zero-shot accuracy before and after training, on the held-out
            classes and on all classes (labelled data with a test or validation split).
    """

    vision_model_name_or_path: str = field(
        default="efficientnet-lite0",
        metadata={
            "help": "Image tower: a built-in alias (efficientnet-lite0), a save_pretrained folder (ViT, a timm model "
            "saved with save_for_hf, ...) or a Hub id. Default efficientnet-lite0."
        },
    )
    text_model_name_or_path: str = field(
        default="minilm",
        metadata={
            "help": "Text tower with a pooler_output (BERT, RoBERTa, MiniLM): a built-in alias, a folder or a Hub id. "
            "Default minilm."
        },
    )
    caption_column: Optional[str] = field(
        default=None,
        metadata={
            "help": "With --train_file: the column of captions (one per image). Omit it to make captions from the "
            "class names with --caption_template."
        },
    )
    caption_template: str = field(
        default="a photo of a {}.",
        metadata={
            "help": "Caption made from a class name: one '{}' stands for the name (multi-label rows: names joined by "
            "' and '). Also the zero-shot prompt and the pipeline's hypothesis_template. Default 'a photo of a {}.'"
        },
    )
    held_out_classes: Optional[list[str]] = field(
        default=None,
        metadata={
            "help": "Class names left out of alignment training (train and validation rows) and scored zero-shot "
            "afterwards. Default: none held out."
        },
    )
    num_held_out_classes: Optional[int] = field(
        default=None,
        metadata={"help": "Hold out this many classes, drawn with --split_seed, instead of naming them."},
    )
    vision_tuning: str = field(
        default="frozen",
        metadata={
            "help": "; ".join(f"{entry.name}: {entry.description}" for entry in VISION_TUNINGS.entries())
            + ". Default frozen."
        },
    )
    projection_dim: int = field(default=256, metadata={"help": "Size of the shared embedding space. Default 256."})
    temperature: float = field(
        default=0.07,
        metadata={"help": f"Softmax temperature (>= {MIN_TEMPERATURE}); CLIP starts at 0.07. Default 0.07."},
    )
    learnable_temperature: bool = field(
        default=True, metadata={"help": "Learn the temperature (CLIP's logit scale). Default on."}
    )
    min_temperature: float = field(
        default=0.01, metadata={"help": "Lower clamp of a learnable temperature. Default 0.01 (CLIP)."}
    )
    max_seq_length: int = field(default=32, metadata={"help": "Tokens per caption after truncation. Default 32."})
    image_size: Optional[int] = field(
        default=None, metadata={"help": "Side of the square images for the image tower. Default: its processor's."}
    )
    zero_shot_eval: bool = field(
        default=True,
        metadata={
            "help": "Zero-shot accuracy before and after training on held-out and on all classes (labelled data). "
            "Default on."
        },
    )

    def __post_init__(self) -> None:
        VISION_TUNINGS.check(self.vision_tuning)
        fields = template_fields(self.caption_template)
        if fields != [""]:
            raise ConfigError(
                f"--caption_template must hold exactly one '{{}}' (where the class name goes); got "
                f"{self.caption_template!r}. Use e.g. 'a photo of a {{}}.'"
            )
        if self.projection_dim <= 0:
            raise ConfigError(f"--projection_dim must be positive; got {self.projection_dim}.")
        if not math.isfinite(self.temperature) or self.temperature < MIN_TEMPERATURE:
            raise ConfigError(
                f"--temperature must be a finite number >= {MIN_TEMPERATURE}; got {self.temperature}. Use 0.05-0.1."
            )
        if self.learnable_temperature and not 0.0 < self.min_temperature <= self.temperature:
            raise ConfigError(
                f"--min_temperature must be in (0, --temperature={self.temperature}]; got {self.min_temperature}."
            )
        if self.max_seq_length <= 0:
            raise ConfigError(f"--max_seq_length must be positive; got {self.max_seq_length}.")
        if self.image_size is not None and self.image_size <= 0:
            raise ConfigError(f"--image_size must be positive; got {self.image_size}. Omit it to keep the processor's.")
        held = self.held_out_classes or []
        if len(set(held)) != len(held):
            raise ConfigError(f"--held_out_classes names a class twice: {held}.")
        if self.num_held_out_classes is not None:
            if held:
                raise ConfigError("Pass --held_out_classes (names) or --num_held_out_classes (a count), not both.")
            if self.num_held_out_classes <= 0:
                raise ConfigError(
                    f"--num_held_out_classes must be positive; got {self.num_held_out_classes}. Omit it to hold none out."
                )
