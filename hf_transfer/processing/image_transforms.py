"""Images as model inputs: decoded, made RGB and resized on the fly (`with_transform`), because storing 224x224
float tensors for a whole data set would not fit on disk; stacking them into batches; the image processor's settings
for cache keys (they enter the feature-cache key explicitly); and resizing to `--image_size`."""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from datasets import Dataset, DatasetDict

from ..images import to_rgb
from .labels import multi_hot

__all__ = ["preprocess_images", "create_image_collator", "describe_image_processing", "set_image_size"]


def _image_transform(
    image_processor: Any, num_labels: Optional[int], augmentation: Any = None
) -> Callable[[dict], dict]:
    def transform(batch: dict) -> dict:
        images = [to_rgb(image) for image in batch["image"]]
        if augmentation is not None:
            images = [augmentation.augment_image(image) for image in images]
        pixel_values = image_processor(images, return_tensors="pt")["pixel_values"]  # (B, 3, H, W)
        if augmentation is not None:
            pixel_values = augmentation.augment_pixels(pixel_values)
        out = {"pixel_values": list(pixel_values)}
        if "label" in batch:
            out["label"] = batch["label"] if num_labels is None else multi_hot(batch["label"], num_labels)
        return out

    return transform


def preprocess_images(
    dataset: DatasetDict | Dataset,
    image_processor: Any,
    *,
    num_labels: Optional[int],
    max_seq_length: int = 128,
    desc_prefix: str = "",
    augmentation: Any = None,
) -> DatasetDict | Dataset:
    """`image` transformed as rows are read (`augmentation` first, when given: a training transform); multi-label
    lists become 0/1 rows. `max_seq_length` and `desc_prefix` are accepted for the modality-independent call."""
    return dataset.with_transform(_image_transform(image_processor, num_labels, augmentation))


def create_image_collator(image_processor: Any = None) -> Callable[[list[dict]], dict[str, torch.Tensor]]:
    """Stacks `pixel_values`; `label` becomes `labels` (float for regression targets and multi-label rows, long for
    class ids)."""

    def collate_images(features: list[dict]) -> dict[str, torch.Tensor]:
        batch = {"pixel_values": torch.stack([torch.as_tensor(f["pixel_values"]) for f in features])}
        if "label" in features[0]:
            labels = [f["label"] for f in features]
            # A regression target (hf_transfer.data.targets) or a multi-label 0/1 row is float, a class id long.
            is_float = isinstance(labels[0], (float, list))
            batch["labels"] = torch.tensor(labels, dtype=torch.float32 if is_float else torch.long)
        return batch

    return collate_images


def describe_image_processing(image_processor: Any, max_seq_length: Optional[int] = None) -> str:
    """The image processor's settings, as a stable text for cache keys (`max_seq_length` does not apply)."""
    return image_processor.to_json_string()


def set_image_size(processor: Any, model: Any, image_size: int) -> Any:
    """Make the image processor resize inputs to `image_size` x `image_size`; returns the processor to use.

    Small images (Fashion-MNIST is 28x28) gain little from the 224x224 of ImageNet backbones and cost
    up to 16x more compute. timm wrappers keep their preprocessing in the model config
    (`pretrained_cfg`), so it is changed there and saved with the model; other processors keep `size`.
    """
    if getattr(model.config, "model_type", None) == "timm_wrapper":
        from transformers import TimmWrapperImageProcessor

        cfg = dict(model.config.pretrained_cfg)
        cfg.update(input_size=[3, image_size, image_size], crop_pct=1.0)
        model.config.pretrained_cfg = cfg
        return TimmWrapperImageProcessor(pretrained_cfg=cfg, architecture=model.config.architecture)
    size = getattr(processor, "size", None)
    if isinstance(size, dict) and "shortest_edge" in size:
        processor.size = {"shortest_edge": image_size}
    else:
        processor.size = {"height": image_size, "width": image_size}
    if getattr(processor, "crop_size", None) is not None:
        processor.crop_size = {"height": image_size, "width": image_size}
    return processor
