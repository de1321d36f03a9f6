"""The arguments of `recipes/detect.py`: what to build the detector from, the data, and how to transfer.

Like every argument module of the toolkit, this one imports no implementation: `--help` and the checks in
`__post_init__` are free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..errors import ConfigError
from .strategies import DETECTION_STRATEGIES

__all__ = [
    "DetectorArguments",
    "DetectionDataArguments",
    "DetectionArguments",
    "DETECTION_DATASETS",
    "detect_argument_classes",
    "detection_source_name",
]

# The derived built-in detection sets (`hf_transfer.detection.canvases.CANVAS_SOURCES`).
DETECTION_DATASETS = ("fashion_mnist_boxes", "digits_boxes")


@dataclass
class DetectorArguments:
    """What the detector is built from.

    Args:
        backbone (`str`, *optional*): the pretrained classification backbone: a built-in (`efficientnet-lite0`,
            `mobilenet-v2`), a timm model saved for the Hub (`save_for_hf`: config.json with `architecture`), or a
            transformers checkpoint with an `AutoBackbone` (ResNet, ConvNeXt, Swin, ...). Its weights are loaded
            into the detector's backbone; the neck and head are new.
        model_name_or_path (`str`, *optional*): an existing detection checkpoint to fine-tune on the new classes
            instead (its class head is replaced). Give this or `backbone`.
        random_init (`bool`): the backbone's architecture without its pretrained weights (the baseline that shows
            what pretraining brings).
        architecture (`str`): the DETR-family model type built around `backbone`.
        d_model, encoder_layers, decoder_layers, num_queries, ffn_dim, attention_heads: the neck's size.
    """

    backbone: Optional[str] = field(
        default=None,
        metadata={
            "help": "Pretrained classification backbone: efficientnet-lite0, mobilenet-v2, a timm folder saved for "
            "the Hub, or a transformers checkpoint with an AutoBackbone (ResNet, ConvNeXt, ...)."
        },
    )
    model_name_or_path: Optional[str] = field(
        default=None,
        metadata={"help": "An existing detection checkpoint to fine-tune on new classes (instead of --backbone)."},
    )
    random_init: bool = field(
        default=False, metadata={"help": "Build the backbone without its pretrained weights (a baseline)."}
    )
    architecture: str = field(
        default="conditional_detr",
        metadata={
            "help": "DETR-family model type built around --backbone: conditional_detr (default: converges several "
            "times faster than detr on little data) or detr."
        },
    )
    d_model: int = field(default=128, metadata={"help": "Width of the transformer neck."})
    encoder_layers: int = field(default=2, metadata={"help": "Transformer encoder layers."})
    decoder_layers: int = field(default=2, metadata={"help": "Transformer decoder layers."})
    attention_heads: int = field(default=4, metadata={"help": "Attention heads of the encoder and decoder."})
    ffn_dim: int = field(default=256, metadata={"help": "Feed-forward width of the encoder and decoder."})
    num_queries: int = field(default=20, metadata={"help": "Object queries: the most objects one image can hold."})
    cache_dir: Optional[str] = field(default=None, metadata={"help": "Where models and data are cached."})

    def __post_init__(self) -> None:
        if (self.backbone is None) == (self.model_name_or_path is None):
            raise ConfigError(
                "Give --backbone (a classification backbone to build a detector on) or --model_name_or_path (a "
                "detection checkpoint to fine-tune), not both and not neither."
            )
        if self.architecture not in ("conditional_detr", "detr"):
            raise ConfigError(f"--architecture {self.architecture!r} is not one of conditional_detr, detr.")
        if self.random_init and self.backbone is None:
            raise ConfigError("--random_init applies to --backbone; a detection checkpoint keeps its weights.")
        if self.d_model % self.attention_heads:
            raise ConfigError(
                f"--d_model {self.d_model} must be a multiple of --attention_heads {self.attention_heads}."
            )


@dataclass
class DetectionDataArguments:
    """The detection data: a built-in derived set, a Hub / local `datasets` set with an `objects` column, or image
    folders holding a COCO `annotations.json`.

    Args:
        dataset_name (`str`, *optional*): `fashion_mnist_boxes`, `digits_boxes`, or a dataset id for
            `datasets.load_dataset` whose rows have an image and `objects` (`bbox` as COCO `[x, y, w, h]` in pixels,
            `category`).
        train_dir, validation_dir, test_dir (`str`, *optional*): folders of images with a COCO `annotations.json`.
        image_column, objects_column (`str`): the columns of a `datasets` set.
        image_size (`int`): side the images are resized to (and the built-in canvases are drawn at).
        max_train_samples, max_eval_samples (`int`, *optional*): seeded subsets of train / of validation and test.
        validation_split_percentage (`float`): carved out of train when there is no validation split.
        split_seed (`int`): the seed of every split and subset.
    """

    dataset_name: Optional[str] = field(
        default=None,
        metadata={
            "help": f"A derived built-in ({', '.join(DETECTION_DATASETS)}) or a datasets id with an `objects` column "
            "(bbox, category). Omit it when you pass --train_dir."
        },
    )
    dataset_config_name: Optional[str] = field(default=None, metadata={"help": "Config of a Hub dataset."})
    train_dir: Optional[str] = field(default=None, metadata={"help": "Images + COCO annotations.json (train)."})
    validation_dir: Optional[str] = field(default=None, metadata={"help": "Same layout (validation); needs train."})
    test_dir: Optional[str] = field(default=None, metadata={"help": "Same layout (test); needs train."})
    image_column: str = field(default="image", metadata={"help": "Image column of a datasets set."})
    objects_column: str = field(default="objects", metadata={"help": "Column with bbox and category lists."})
    image_size: int = field(default=96, metadata={"help": "Side images are resized to (built-in canvases: drawn at)."})
    max_train_samples: Optional[int] = field(default=None, metadata={"help": "Seeded subset of train images."})
    max_eval_samples: Optional[int] = field(default=None, metadata={"help": "Seeded subset of validation / test."})
    validation_split_percentage: float = field(
        default=0.15, metadata={"help": "Fraction of train carved out as validation when there is none."}
    )
    split_seed: int = field(default=42, metadata={"help": "Seed of every split and subset."})

    def __post_init__(self) -> None:
        if (self.dataset_name is None) == (self.train_dir is None):
            raise ConfigError("Give --dataset_name or --train_dir (a folder with a COCO annotations.json), not both.")
        if (self.validation_dir or self.test_dir) and self.train_dir is None:
            raise ConfigError("--validation_dir and --test_dir need --train_dir.")
        if self.image_size < 32:
            raise ConfigError(f"--image_size {self.image_size} is too small for a detector; use 64 or more.")
        if not 0.0 < self.validation_split_percentage < 1.0:
            raise ConfigError(f"--validation_split_percentage {self.validation_split_percentage} must be in (0, 1).")
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"--{name} {value} must be positive.")


@dataclass
class DetectionArguments:
    """How the detector is trained and scored.

    Args:
        strategy (`str`): a `DETECTION_STRATEGIES` name.
        head_epochs (`float`): head_then_full's first stage, in epochs (the rest of `--num_train_epochs` trains all).
        backbone_learning_rate (`float`, *optional*): the learning rate of the backbone, or of its LoRA adapters, when
            it trains (DETR's recipe trains it 10x slower than the neck); default `--learning_rate / 10`.
        augment (`bool`): box-aware training augmentation (albumentations: flip, scale / crop with boxes clipped).
        score_threshold (`float`): lowest score a detection is kept at when scored (0 keeps every query, as COCO
            evaluation does).
    """

    strategy: str = field(
        default="full",
        metadata={
            "help": "; ".join(f"{s.name} ({s.description})" for s in DETECTION_STRATEGIES.entries())
            + ". Default: full."
        },
    )
    head_epochs: float = field(default=1.0, metadata={"help": "head_then_full: epochs of the frozen-backbone stage."})
    backbone_learning_rate: Optional[float] = field(
        default=None,
        metadata={
            "help": "Learning rate of the backbone (or its LoRA adapters) when it trains; default --learning_rate / 10."
        },
    )
    augment: bool = field(default=True, metadata={"help": "Box-aware augmentation of the training images."})
    score_threshold: float = field(default=0.0, metadata={"help": "Lowest score kept when scoring (0: all)."})

    def __post_init__(self) -> None:
        DETECTION_STRATEGIES.check(self.strategy)
        if self.head_epochs <= 0:
            raise ConfigError(f"--head_epochs {self.head_epochs} must be positive.")
        if not 0.0 <= self.score_threshold < 1.0:
            raise ConfigError(f"--score_threshold {self.score_threshold} must be in [0, 1).")

    @property
    def strategy_entry(self):
        return DETECTION_STRATEGIES.get(self.strategy)


def detection_source_name(args: DetectionDataArguments) -> str:
    """What the data is called in results, cards and comparisons: the data set name, else the train folder."""
    return args.dataset_name or args.train_dir


def detect_argument_classes() -> tuple[type, ...]:
    """`(DetectorArguments, DetectionDataArguments, DetectionArguments, LoraArguments, HubArguments,
    TrainingArguments)`: recipes/detect.py's, in its order, one list for the recipe and for `compare` (which reads
    the flags it hands to detection cells with the same parser); imported when asked."""
    from transformers import TrainingArguments

    from ..finetuning.arguments import LoraArguments
    from ..hub import HubArguments

    return (
        DetectorArguments,
        DetectionDataArguments,
        DetectionArguments,
        LoraArguments,
        HubArguments,
        TrainingArguments,
    )
