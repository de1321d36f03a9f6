"""`ContrastiveArguments`: what a user sets for contrastive pretraining (recipe flags and library config)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Literal, Optional

from ..constants import MIN_TEMPERATURE, Modality
from ..errors import ConfigError
from ..modalities import MODALITIES
from ..models.pooling_modes import POOLING_MODES
from .losses.registry import CONTRASTIVE_LOSSES

__all__ = ["ContrastiveArguments", "ContrastiveLossName", "ViewsName"]

ContrastiveLossName = str  # a name of `CONTRASTIVE_LOSSES`
ViewsName = Literal["auto", "augment", "dropout", "pair"]


@dataclass
class ContrastiveArguments:
    """How positives are made, which loss compares them, and how big the compared batch gets.

    Args:
        contrastive_loss (`str`, defaults to `"ntxent"`): a name of `CONTRASTIVE_LOSSES`:
            `ntxent`: SimCLR's NT-Xent over the 2N views (2N - 2 negatives per view). `in_batch`: InfoNCE over
            (anchor, positive) pairs, sentence-transformers' MultipleNegativesRankingLoss (N - 1 negatives).
            `supcon`: supervised contrastive loss (Khosla et al. 2020), needs labels.
        views (`Literal["auto", "augment", "dropout", "pair"]`, defaults to `"auto"`):
            How the two views of a sample are made. `augment`: two SimCLR augmentations of an image.
            `dropout`: the same text twice through the encoder in train mode (SimCSE). `pair`: the text and its
            `pair_column`. `auto`: `augment` for images, `pair` when `pair_column` is set, else `dropout`.
        pair_column (`str`, *optional*):
            Column holding the positive of each text (e.g. a paraphrase or answer). Only with `--train_file`.
        temperature (`float`, defaults to 0.1):
            Softmax temperature tau of the loss (logits = cosine / tau; sentence-transformers' `scale` = 1 / tau).
            At least 1e-3. SimCSE: 0.05, SupCon: 0.1, SimCLR: 0.1-0.5.
        learnable_temperature (`bool`, defaults to `False`):
            Learn tau with the model, as CLIP's logit scale (initialised at `temperature`).
        min_temperature (`float`, defaults to 0.01):
            Lower clamp of a learnable tau (CLIP's maximal logit scale 100 is 0.01).
        symmetric (`bool`, defaults to `False`):
            With `in_batch`: also score positive -> anchor and average both directions.
        gather_across_processes (`bool`, defaults to `True`):
            With several processes, use the embeddings of all of them as negatives (gradients flow back).
        projection_dim (`int`, defaults to 128):
            Output size of the projection head used during pretraining and dropped when saving (SimCLR's g).
            0 puts the loss directly on the backbone's pooled embedding (SimCSE, sentence-transformers).
        projection_hidden_dim (`int`, *optional*):
            Hidden size of the 2-layer head. Default: the backbone's embedding size.
        pooling (`str`, *optional*): a mode of `hf_transfer.models.pooling_modes.POOLING_MODES`:
            Pooled embedding that is trained (`hf_transfer.models.pooling`). Default: the pooling a sentence-transformers
            checkpoint ships (`modules.json`), else mean (text) / the model's pooler (vision). A text
            classifier from `recipes/finetune.py` reads BERT's `pooler` (CLS, dense, tanh): pick `pooler` to
            train exactly what a later linear probe sees.
        gradient_cache (`bool`, defaults to `False`):
            GradCache (Gao et al. 2021, https://arxiv.org/abs/2101.06983): embed the batch in mini-batches
            without graphs, take the loss gradient w.r.t. the embeddings, then replay each mini-batch with
            gradients. Same gradients as without it, memory of one mini-batch, ~1/3 more compute.
        gradient_cache_mini_batch_size (`int`, defaults to 32):
            Rows (views) embedded at once with `gradient_cache`.
        max_seq_length (`int`, defaults to 128):
            Tokens per text after truncation.
        image_size (`int`, *optional*):
            Side of the square crops fed to a vision backbone. Default: the image processor's size.
        crop_min_scale (`float`, defaults to 0.2):
            Smallest area fraction of SimCLR's random resized crop (SimCLR: 0.08 on ImageNet).
        color_jitter_strength (`float`, defaults to 0.5):
            SimCLR's colour distortion strength s (jitter of 0.8s brightness/contrast/saturation, 0.2s hue,
            applied with probability 0.8). 0 turns it off.
        grayscale_probability (`float`, defaults to 0.2):
            Probability of converting a view to grayscale.
        blur_probability (`float`, defaults to 0.0):
            Probability of a Gaussian blur (kernel ~10% of the image side). SimCLR uses 0.5 on ImageNet and
            none on 32x32 images.
        horizontal_flip (`bool`, defaults to `True`):
            Random horizontal flips.
        augmentation_backend (`Literal["batched", "torchvision"]`, defaults to `"batched"`):
            `batched`: kornia augmentations on the whole batch (per-image random parameters), several times
            faster on CPUs. `torchvision`: one torchvision.transforms.v2 pipeline per image.
        save_sentence_transformers (`bool`, defaults to `True`):
            With a text backbone, also write sentence-transformers' files (modules.json, pooling config) so the
            output loads with `SentenceTransformer(output_dir)` too.
        linear_eval (`bool`, defaults to `False`):
            With labelled data: fit a linear probe on the trained pooled embedding (train split, L2 chosen on
            validation) before and after pretraining and report both (`linear_eval_*` in all_results.json), the
            evaluation protocol of SimCLR / SimCSE. Main process only.
        model_type (`str`, *optional*):
            Pretrain from scratch: a transformers model type (`vit`, `bert`, ...) built with random weights from
            its default config plus `config_overrides`, as in transformers' `run_mlm.py`. Images get that
            type's default image processor; text takes the tokenizer of `--model_name_or_path`.
        config_overrides (`str`, *optional*):
            With `model_type`: comma-separated config changes, e.g. `"image_size=32,patch_size=4,hidden_size=64"`.
    """

    contrastive_loss: ContrastiveLossName = field(
        default="ntxent",
        metadata={
            "help": "; ".join(f"{entry.name}: {entry.description}" for entry in CONTRASTIVE_LOSSES.entries())
            + ". Default ntxent."
        },
    )
    views: ViewsName = field(
        default="auto",
        metadata={
            "help": "How the two views of a sample are made: augment (SimCLR image augmentations), dropout "
            "(the same text twice, SimCSE), pair (the text and --pair_column), or auto (augment for images, "
            "pair when --pair_column is set, else dropout). Default auto."
        },
    )
    pair_column: Optional[str] = field(
        default=None,
        metadata={
            "help": "Column with the positive of each text (paraphrase, answer); needs --train_file. "
            "Omit it for SimCSE-style dropout views."
        },
    )
    temperature: float = field(
        default=0.1,
        metadata={
            "help": "Softmax temperature tau: logits = cosine / tau (sentence-transformers' scale = 1/tau). "
            f"At least {MIN_TEMPERATURE}. SimCSE 0.05, SupCon 0.1, SimCLR 0.1-0.5. Default 0.1."
        },
    )
    learnable_temperature: bool = field(
        default=False,
        metadata={
            "help": "Learn tau as CLIP's logit scale, starting at --temperature and clamped at "
            "--min_temperature. Default: fixed."
        },
    )
    min_temperature: float = field(
        default=0.01,
        metadata={"help": "Lower clamp of a learnable tau, in (0, --temperature]. CLIP: 0.01 (logit scale <= 100)."},
    )
    symmetric: bool = field(
        default=False,
        metadata={"help": "in_batch only: also score positive->anchor and average both directions. Default off."},
    )
    gather_across_processes: bool = field(
        default=True,
        metadata={
            "help": "With several processes, use the embeddings of all processes as negatives, with "
            "gradients (2 processes x batch B: 2B - 1 negatives per anchor with in_batch). Default on."
        },
    )
    projection_dim: int = field(
        default=128,
        metadata={
            "help": "Output size of the projection head (SimCLR's g), used in pretraining and dropped when "
            "saving. 0: no head, the loss sees the pooled embedding (SimCSE). Default 128."
        },
    )
    projection_hidden_dim: Optional[int] = field(
        default=None,
        metadata={"help": "Hidden size of the 2-layer projection head. Default: the backbone's embedding size."},
    )
    pooling: Optional[str] = field(
        default=None,
        metadata={
            "help": f"Pooled embedding to train: {', '.join(POOLING_MODES.names())} (pooler: the model's "
            "pooler_output). Default: the pooling of a sentence-transformers checkpoint "
            "(modules.json), else mean for text, pooler for vision. recipes/finetune.py's BERT classifier "
            "reads `pooler`."
        },
    )
    gradient_cache: bool = field(
        default=False,
        metadata={
            "help": "GradCache (Gao et al. 2021): large batches at the memory of one mini-batch, with the "
            "same gradients; about 1/3 more compute. Default off."
        },
    )
    gradient_cache_mini_batch_size: int = field(
        default=32,
        metadata={"help": "Rows embedded at once with --gradient_cache (both views count). Default 32."},
    )
    max_seq_length: int = field(default=128, metadata={"help": "Tokens per text after truncation. Default 128."})
    image_size: Optional[int] = field(
        default=None,
        metadata={"help": "Side of the square crops for a vision backbone. Default: the image processor's size."},
    )
    crop_min_scale: float = field(
        default=0.2,
        metadata={"help": "Smallest area fraction of the random resized crop, in (0, 1]. SimCLR: 0.08. Default 0.2."},
    )
    color_jitter_strength: float = field(
        default=0.5,
        metadata={"help": "SimCLR colour distortion strength s (>= 0; 0 turns it off). Default 0.5."},
    )
    grayscale_probability: float = field(
        default=0.2, metadata={"help": "Probability of a grayscale view, in [0, 1]. Default 0.2."}
    )
    blur_probability: float = field(
        default=0.0,
        metadata={"help": "Probability of a Gaussian blur, in [0, 1]. SimCLR: 0.5 on ImageNet, 0 on 32x32. Default 0."},
    )
    horizontal_flip: bool = field(default=True, metadata={"help": "Random horizontal flips. Default on."})
    augmentation_backend: Literal["batched", "torchvision"] = field(
        default="batched",
        metadata={
            "help": "batched (kornia on the whole batch, per-image random draws; fast on CPU) or "
            "torchvision (a transforms.v2 pipeline per image). Default batched."
        },
    )
    save_sentence_transformers: bool = field(
        default=True,
        metadata={
            "help": "Text backbones: also write sentence-transformers' modules.json and pooling config, so "
            "the output loads with SentenceTransformer(output_dir). Default on."
        },
    )
    linear_eval: bool = field(
        default=False,
        metadata={
            "help": "With labelled data: linear probe on the trained pooled embedding before and after "
            "pretraining (train split, L2 chosen on validation), reported as linear_eval_* in "
            "all_results.json. Default off."
        },
    )
    model_type: Optional[str] = field(
        default=None,
        metadata={
            "help": "Pretrain from scratch: a transformers model type (vit, bert, ...) with random weights, "
            "configured by --config_overrides (as in transformers' run_mlm.py). Images use its default image "
            "processor, text the tokenizer of --model_name_or_path. Default: load --model_name_or_path."
        },
    )
    config_overrides: Optional[str] = field(
        default=None,
        metadata={
            "help": "With --model_type: config changes 'key=value,key=value', e.g. "
            "'image_size=32,patch_size=4,hidden_size=64,num_hidden_layers=4'."
        },
    )

    def __post_init__(self) -> None:
        if self.config_overrides and not self.model_type:
            raise ConfigError(
                "--config_overrides changes the config of a model built from scratch: pass --model_type too "
                "(e.g. --model_type vit), or drop --config_overrides to load --model_name_or_path."
            )
        if self.model_type:
            from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

            if self.model_type not in CONFIG_MAPPING_NAMES:
                raise ConfigError(
                    f"--model_type {self.model_type!r} is not a transformers model type; use e.g. vit, bert, deit."
                )
        if (
            not isinstance(self.temperature, (int, float))
            or not math.isfinite(self.temperature)
            or (self.temperature < MIN_TEMPERATURE)
        ):
            raise ConfigError(
                f"--temperature must be a finite number >= {MIN_TEMPERATURE}; got {self.temperature!r}. A near-zero "
                "temperature makes the softmax a hard max: use 0.05-0.5."
            )
        if self.learnable_temperature and not 0.0 < self.min_temperature <= self.temperature:
            raise ConfigError(
                f"--min_temperature must be in (0, --temperature={self.temperature}] with --learnable_temperature; "
                f"got {self.min_temperature}. Use e.g. 0.01 (CLIP)."
            )
        if self.views == "pair" and not self.pair_column:
            raise ConfigError("--views pair needs --pair_column NAME (the column with each text's positive).")
        if self.pair_column and self.views not in ("auto", "pair"):
            raise ConfigError(
                f"--pair_column {self.pair_column!r} gives pairs, but --views is {self.views!r}. Drop --views "
                "(or pass --views pair), or drop --pair_column."
            )
        loss = CONTRASTIVE_LOSSES.get(self.contrastive_loss)
        if self.pooling is not None:
            POOLING_MODES.check(self.pooling)
        if self.pair_column and not loss.accepts_pairs:
            raise ConfigError(
                f"--contrastive_loss {loss.name} makes positives from labels and two views of one input; it does not "
                "use --pair_column. Use --contrastive_loss in_batch for pairs, or drop --pair_column."
            )
        if self.projection_dim < 0:
            raise ConfigError(f"--projection_dim must be >= 0 (0: no projection head); got {self.projection_dim}.")
        if self.projection_hidden_dim is not None and self.projection_hidden_dim <= 0:
            raise ConfigError(
                f"--projection_hidden_dim must be positive; got {self.projection_hidden_dim}. Omit it to use the "
                "backbone's embedding size."
            )
        if self.gradient_cache_mini_batch_size <= 0:
            raise ConfigError(
                f"--gradient_cache_mini_batch_size must be positive; got {self.gradient_cache_mini_batch_size}."
            )
        if self.max_seq_length <= 0:
            raise ConfigError(f"--max_seq_length must be positive; got {self.max_seq_length}.")
        if self.image_size is not None and self.image_size <= 0:
            raise ConfigError(f"--image_size must be positive; got {self.image_size}. Omit it to keep the processor's.")
        if not 0.0 < self.crop_min_scale <= 1.0:
            raise ConfigError(f"--crop_min_scale must be in (0, 1]; got {self.crop_min_scale}. SimCLR uses 0.08.")
        if self.color_jitter_strength < 0:
            raise ConfigError(f"--color_jitter_strength must be >= 0 (0: off); got {self.color_jitter_strength}.")
        for flag, value in (
            ("--grayscale_probability", self.grayscale_probability),
            ("--blur_probability", self.blur_probability),
        ):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{flag} must be a probability in [0, 1]; got {value}.")
        if self.symmetric and not loss.has_symmetric_option:
            warnings.warn(
                f"--symmetric only changes --contrastive_loss in_batch; with {self.contrastive_loss} it has no effect "
                "(NT-Xent and SupCon already score both views).",
                stacklevel=2,
            )
        if not self.gradient_cache and self.gradient_cache_mini_batch_size != 32:
            warnings.warn(
                "--gradient_cache_mini_batch_size is set but --gradient_cache is off, so it has no effect.",
                stacklevel=2,
            )

    @property
    def needs_labels(self) -> bool:
        return CONTRASTIVE_LOSSES.get(self.contrastive_loss).needs_labels

    def resolve_views(self, modality: Modality) -> Literal["augment", "dropout", "pair"]:
        """The concrete view maker for a modality; raises `ConfigError` when it does not fit."""
        entry = MODALITIES.get(modality)
        views = self.views
        if views == "auto":
            fits = entry.contrastive_views
            views = "pair" if self.pair_column and "pair" in fits else fits[0]
        if views not in entry.contrastive_views:
            owner = next(other for other in MODALITIES.entries() if views in other.contrastive_views)
            raise ConfigError(
                f"--views {views} is for {owner.inputs}; {entry.backbone_phrase} needs --views {entry.views_hint}."
            )
        return views
