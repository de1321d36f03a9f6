"""Training the way timm trains, for every fine-tuning strategy: image augmentation, Mixup / CutMix, weight EMA.

Split peft-style: `arguments.py` is what the user sets (no torch, no timm); `transforms.py` builds the image training
transform around the model's own processor; `mixing.py` mixes batches; `ema.py` keeps the weight average. timm is
imported only when one of them is asked for (it is the `vision` extra).
"""

from .arguments import AUGMENTATIONS, AugmentationArguments
from .ema import ModelEmaCallback
from .mixing import BatchMixer, create_batch_mixer
from .transforms import ImageAugmentation, create_image_augmentation

__all__ = [
    "AUGMENTATIONS",
    "AugmentationArguments",
    "BatchMixer",
    "ImageAugmentation",
    "ModelEmaCallback",
    "create_batch_mixer",
    "create_image_augmentation",
]
