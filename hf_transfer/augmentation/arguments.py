"""What the user sets to augment fine-tuning the way timm trains: image transforms, Mixup / CutMix, weight EMA.

Only settings live here (no torch, no timm): `hf_transfer.augmentation.transforms`, `.mixing` and `.ema` build
them. Label smoothing is transformers' own `--label_smoothing_factor`; with Mixup / CutMix it smooths the mixed
targets instead (timm's `Mixup(label_smoothing=...)`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..errors import ConfigError
from ..finetuning.strategies import STRATEGIES
from ..modalities import MODALITIES
from ..tasks import TASKS

__all__ = ["AUGMENTATIONS", "AUTO_AUGMENT_POLICIES", "AugmentationArguments"]

# `--augmentation` presets. `basic`: random-resized crop + horizontal flip + colour jitter (timm's training
# transform without a policy); the two policies add RandAugment (timm's, at its fine-tuning setting) or TrivialAugment
# (torchvision's `TrivialAugmentWide`; timm has no policy string for it) and random erasing.
AUGMENTATIONS = ("auto", "none", "basic", "randaugment", "trivialaugment")
AUTO_AUGMENT_POLICIES = {"randaugment": "rand-m9-mstd0.5-inc1", "trivialaugment": "trivialaugment"}
_POLICY_RANDOM_ERASING = 0.25  # timm's --reprob in its fine-tuning hparams
_AUTO_PRESET = "none"  # what `auto` trains on (see AugmentationArguments)


@dataclass
class AugmentationArguments:
    """Training-time augmentation (images) and weight EMA (every model); evaluation never augments.

    Args:
        augmentation (`str`): `none` (train on the evaluation transform), `basic`, `randaugment`,
            `trivialaugment`, or `auto`, the default: `none`. Measured on EfficientNet-Lite0 (benchmarks/RESULTS.md,
            3 seeds, 3 epochs on 1,000 Fashion-MNIST images and on digits), `basic` lost 5 to 35 points to no
            augmentation in every cell and a milder crop still lost 2: at the short schedules of small-data transfer
            a crop costs more than it regularises. Ask for a preset to augment (longer runs, photos); a crop can also
            cut out an object a multi-label row names or change a count a regression target holds. The linear
            probe reads cached features and never augments.
        crop_scale (`list[float]`, *optional*): area range of the random-resized crop; default timm's (0.08, 1.0).
        crop_ratio (`list[float]`, *optional*): aspect-ratio range of the crop; default (3/4, 4/3).
        hflip (`float`): horizontal-flip probability. vflip (`float`): vertical-flip probability.
        color_jitter (`float`): brightness / contrast / saturation jitter; off under a policy, as in timm.
        auto_augment (`str`, *optional*): a timm policy string (`rand-m9-mstd0.5-inc1`, `augmix-m5-w4-d2`,
            `original`, `v0`...) in place of the preset's.
        random_erasing (`float`, *optional*): probability of erasing a random box (timm's `--reprob`); default 0.25
            with a policy, else 0.
        mixup (`float`), cutmix (`float`): Beta-distribution alphas of Mixup and CutMix (0 = off); image
            classification only: single-label trains on the mixed class distributions with soft-target
            cross-entropy, multi-label on the mixed 0/1 rows with BCE.
        mixup_prob (`float`): probability of mixing a batch. mixup_switch_prob (`float`): with both on, the
            probability of CutMix rather than Mixup.
        model_ema (`bool`): keep an exponential moving average of the weights (timm's `ModelEmaV3`); the average is
            what is evaluated and saved at the end.
        model_ema_decay (`float`): the average's decay; with `model_ema_warmup` it ramps up to it, so short runs do
            not keep (nearly) the starting weights.
    """

    augmentation: str = field(
        default="auto",
        metadata={
            "help": "Image training transform: none, basic (random-resized crop, flip, colour jitter), randaugment "
            "or trivialaugment (basic + the policy + random erasing 0.25). Default auto: none (it measured best at "
            "the short schedules of small-data fine-tuning, benchmarks/RESULTS.md). Evaluation never augments."
        },
    )
    crop_scale: Optional[list[float]] = field(
        default=None, metadata={"help": "Area range (min max) of the random-resized crop. Default: 0.08 1.0."}
    )
    crop_ratio: Optional[list[float]] = field(
        default=None, metadata={"help": "Aspect-ratio range (min max) of the random-resized crop. Default: 0.75 1.333."}
    )
    hflip: float = field(default=0.5, metadata={"help": "Horizontal-flip probability of the training transform."})
    vflip: float = field(default=0.0, metadata={"help": "Vertical-flip probability of the training transform."})
    color_jitter: float = field(
        default=0.4, metadata={"help": "Colour-jitter strength of `basic` (off under a policy, as in timm); 0: off."}
    )
    auto_augment: Optional[str] = field(
        default=None,
        metadata={
            "help": "A timm augmentation policy string in place of the preset's: rand-m9-mstd0.5-inc1, original, ..."
        },
    )
    random_erasing: Optional[float] = field(
        default=None,
        metadata={"help": "Random-erasing probability (timm --reprob). Default: 0.25 with a policy, else 0."},
    )
    mixup: float = field(default=0.0, metadata={"help": "Mixup alpha (0: off); image classification only."})
    cutmix: float = field(default=0.0, metadata={"help": "CutMix alpha (0: off); image classification only."})
    mixup_prob: float = field(default=1.0, metadata={"help": "Probability of mixing a batch."})
    mixup_switch_prob: float = field(
        default=0.5, metadata={"help": "With both Mixup and CutMix on: probability of CutMix for a batch."}
    )
    model_ema: bool = field(
        default=False,
        metadata={"help": "Keep an EMA of the weights (timm ModelEmaV3); the EMA weights are evaluated and saved."},
    )
    model_ema_decay: float = field(default=0.999, metadata={"help": "Decay of the weight EMA."})
    model_ema_warmup: bool = field(
        default=True,
        metadata={
            "help": "Ramp the EMA decay up from 0 (timm's warmup), so a short run does not average in its start."
        },
    )

    def __post_init__(self) -> None:
        if self.augmentation not in AUGMENTATIONS:
            raise ConfigError(f"--augmentation {self.augmentation!r} is not one of {', '.join(AUGMENTATIONS)}.")
        for flag in ("crop_scale", "crop_ratio"):
            value = getattr(self, flag)
            if value is not None and (len(value) != 2 or not 0 < value[0] <= value[1]):
                raise ConfigError(f"--{flag} {value} must be two positive numbers, min then max (e.g. 0.08 1.0).")
        if self.crop_scale is not None and self.crop_scale[1] > 1.0:
            raise ConfigError(f"--crop_scale {self.crop_scale}: the crop's area is a fraction of the image, at most 1.")
        probabilities = ("hflip", "vflip", "mixup_prob", "mixup_switch_prob", "random_erasing")
        for flag in probabilities:
            value = getattr(self, flag)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"--{flag} {value} is a probability: use a value in [0, 1].")
        for flag in ("color_jitter", "mixup", "cutmix"):
            if getattr(self, flag) < 0:
                raise ConfigError(f"--{flag} {getattr(self, flag)} must be 0 (off) or positive.")
        if not 0.0 < self.model_ema_decay < 1.0:
            raise ConfigError(f"--model_ema_decay {self.model_ema_decay} must be in (0, 1), e.g. 0.999.")

    @property
    def mixes(self) -> bool:
        """Whether Mixup or CutMix is on."""
        return self.mixup > 0 or self.cutmix > 0

    def resolve_augmentation(self, strategy: str, task: str, modality: str = "vision") -> str:
        """The preset a run uses: `--augmentation`, or `auto`'s choice (`none`, see the class; text and the probe
        never augment)."""
        if not MODALITIES.get(modality).augmentable or not STRATEGIES.get(strategy).finetunes:
            return "none"
        if self.augmentation == "auto" and (self.auto_augment or self.random_erasing):
            return "basic"  # a policy or erasing asked for by itself comes with the crop and flip of `basic`
        return _AUTO_PRESET if self.augmentation == "auto" else self.augmentation

    def policy(self, preset: str) -> Optional[str]:
        """The timm policy string of `preset` (or `--auto_augment`); None for none / basic."""
        return self.auto_augment or AUTO_AUGMENT_POLICIES.get(preset)

    def erasing_probability(self, preset: str) -> float:
        """`--random_erasing`, or the preset's default (0.25 with a policy, else 0)."""
        if self.random_erasing is not None:
            return self.random_erasing
        return _POLICY_RANDOM_ERASING if self.policy(preset) else 0.0

    def check_run(
        self,
        *,
        strategy: str,
        task: str,
        modality: str,
        label_smoothing: float = 0.0,
        load_best_model_at_end: bool = False,
    ) -> None:
        """Settings that do not fit this run, each one line naming the fix (the task is known once data is loaded)."""
        augments = self.augmentation not in ("auto", "none") or self.auto_augment or self.random_erasing
        if not MODALITIES.get(modality).augmentable and (augments or self.mixes):
            raise ConfigError(
                "--augmentation, --auto_augment, --random_erasing, --mixup and --cutmix transform images; this is a "
                f"{modality} model. Leave them out (--model_ema and --label_smoothing_factor work for every model)."
            )
        if not STRATEGIES.get(strategy).finetunes and (augments or self.mixes or self.model_ema):
            training = ", ".join(entry.name for entry in STRATEGIES.entries() if entry.finetunes)
            raise ConfigError(
                f"--strategy {strategy} fits its head on cached features of the evaluation transform: "
                f"augmentation, Mixup / CutMix and --model_ema need training; use --strategy {training}, or leave "
                "them out."
            )
        if self.mixes and not TASKS.get(task).classifies_rows:
            raise ConfigError(
                f"--mixup / --cutmix mix the classes of two images into soft targets; a {task} task has no classes. "
                "Leave them out."
            )
        if self.model_ema and load_best_model_at_end:
            raise ConfigError(
                "--model_ema saves the weight average at the end, --load_best_model_at_end the best checkpoint's "
                "live weights: choose one."
            )
        if label_smoothing and not TASKS.get(task).picks_one_class:
            raise ConfigError(
                f"--label_smoothing_factor smooths one class per example; a {task} task has no such class. "
                "Leave it at 0."
            )
