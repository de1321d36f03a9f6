"""`CrossModalArguments`: what a user sets to fine-tune a text encoder's body on images (`recipes/cross_modal.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..errors import ConfigError
from .tuning import BODY_INITS, BODY_TUNINGS

__all__ = ["CrossModalArguments"]


def _choices(registry) -> str:
    return "; ".join(f"{entry.name}: {entry.description}" for entry in registry.entries())


@dataclass
class CrossModalArguments:
    """The image side around the text body, how the body starts and how it is tuned. The body itself is
    `--model_name_or_path` (`ModelArguments`).

    Args:
        body_tuning (`str`, defaults to `"frozen"`): a name of `BODY_TUNINGS`: `frozen` (Lu et al. 2021), `lora`, `full`.
        body_init (`str`, defaults to `"pretrained"`): a name of `BODY_INITS`: `pretrained`, or `random` (the same
            architecture from its config, the control).
        image_size (`int`, defaults to 28): side of the square images (resized to it); a multiple of `patch_size`.
        patch_size (`int`, defaults to 4): side of a square patch; one patch is one token of the body.
        head_learning_rate (`float`, *optional*): learning rate of the new parts (patch embedder, [CLS] vector,
            classifier). Default: `--learning_rate`.
        classifier_dropout (`float`, defaults to 0.0): dropout before the classifier.
        image_mean (`float`, defaults to 0.5), image_std (`float`, defaults to 0.5): pixel normalisation (per channel,
            the same for the three).
    """

    body_tuning: str = field(default="frozen", metadata={"help": _choices(BODY_TUNINGS) + ". Default frozen."})
    body_init: str = field(default="pretrained", metadata={"help": _choices(BODY_INITS) + ". Default pretrained."})
    image_size: int = field(
        default=28,
        metadata={
            "help": "Side of the square images fed to the patch embedder (a multiple of "
            "--patch_size). Default 28 (Fashion-MNIST's)."
        },
    )
    patch_size: int = field(default=4, metadata={"help": "Side of a square patch (one token each). Default 4."})
    head_learning_rate: Optional[float] = field(
        default=None,
        metadata={"help": "Learning rate of the patch embedder, [CLS] and classifier. Default: --learning_rate."},
    )
    classifier_dropout: float = field(default=0.0, metadata={"help": "Dropout before the classifier. Default 0."})
    image_mean: float = field(default=0.5, metadata={"help": "Pixel mean subtracted (0-1 scale). Default 0.5."})
    image_std: float = field(default=0.5, metadata={"help": "Pixel std divided by. Default 0.5."})

    def __post_init__(self) -> None:
        BODY_TUNINGS.check(self.body_tuning)
        BODY_INITS.check(self.body_init)
        if self.patch_size <= 0 or self.image_size <= 0:
            raise ConfigError(
                f"--image_size and --patch_size must be positive; got {self.image_size} and {self.patch_size}."
            )
        if self.image_size % self.patch_size:
            raise ConfigError(
                f"--image_size {self.image_size} is not a multiple of --patch_size {self.patch_size}; choose e.g. "
                f"--patch_size {next(p for p in (4, 7, 2, 1) if self.image_size % p == 0)}."
            )
        if self.head_learning_rate is not None and self.head_learning_rate <= 0:
            raise ConfigError(f"--head_learning_rate must be positive; got {self.head_learning_rate}.")
        if not 0.0 <= self.classifier_dropout < 1.0:
            raise ConfigError(f"--classifier_dropout must be in [0, 1); got {self.classifier_dropout}.")
        if self.image_std <= 0:
            raise ConfigError(f"--image_std must be positive; got {self.image_std}.")

    @property
    def num_tokens(self) -> int:
        """What the body reads per image: the [CLS] vector and one token per patch."""
        return (self.image_size // self.patch_size) ** 2 + 1
