"""Derived built-in data sets (listed in `hf_transfer.registry`): shifted domains made from a shipped set.

No second real digits domain ships offline, so one is derived, as MNIST-M is derived from MNIST (Ganin et
al. 2016, sec. 5.2.2): `digits_m` blends each scikit-learn digit (upsampled from 8x8 to 32x32) over a
random crop of a colour photo, taking the absolute difference |photo - digit| per channel. Digit shapes
and labels are unchanged; colour, texture and contrast are not, which is exactly the covariate shift that
hurts a model trained on the clean grey digits. The photos are scikit-learn's two sample images
(`china.jpg`, `flower.jpg`; the original used BSDS500); crops of random position and scale (32-160 px)
give each digit its own background.

`create_digits_m` loads `digits` with the same `DataArguments` (so splits and subsets are the same rows),
then shifts every image. Each image's background is seeded by the image's own pixels, so a digit looks the
same in every split and subset; each split is a cached `Dataset.map` with a fingerprint fixed by the base
split's fingerprint and the shift's version and code, so reruns hit the cache and match bit for bit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import io
import logging
from functools import lru_cache
from typing import TYPE_CHECKING, Optional

import numpy as np
from datasets import Dataset, DatasetDict, Features, Image

from .arguments import DataArguments
from .fingerprints import code_key
from .loading import load_transfer_dataset

if TYPE_CHECKING:
    import PIL.Image

__all__ = ["MNIST_M_IMAGE_SIZE", "create_digits_m"]

logger = logging.getLogger(__name__)

MNIST_M_IMAGE_SIZE = 32  # side of the shifted images (MNIST-M keeps MNIST's 28; 8x8 digits are upsampled)

_MNIST_M_VERSION = "1"  # bump when the shift changes, so cached shifted splits are not reused

_CROP_SCALE = (32, 160)  # side of the photo crop before it is resized to the image size


@lru_cache(maxsize=1)
def _background_photos() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_sample_images

    return tuple(np.asarray(image, dtype=np.uint8) for image in load_sample_images().images)  # (427, 640, 3) each


def _mnist_m_image(digit: PIL.Image.Image, size: int) -> dict:
    """|photo crop - digit| per channel, with a crop chosen by a generator seeded by the digit's pixels."""
    import PIL.Image

    grey = np.asarray(digit.convert("L"))
    seed = int.from_bytes(hashlib.sha256(grey.tobytes() + str(grey.shape).encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    photos = _background_photos()
    photo = photos[int(rng.integers(len(photos)))]
    side = int(rng.integers(_CROP_SCALE[0], _CROP_SCALE[1] + 1))
    top = int(rng.integers(photo.shape[0] - side + 1))
    left = int(rng.integers(photo.shape[1] - side + 1))
    crop = PIL.Image.fromarray(photo[top : top + side, left : left + side]).resize((size, size), PIL.Image.BILINEAR)
    strokes = np.asarray(PIL.Image.fromarray(grey).resize((size, size), PIL.Image.BILINEAR), dtype=np.int16)
    blended = np.abs(np.asarray(crop, dtype=np.int16) - strokes[..., None]).astype(np.uint8)  # (size, size, 3)
    buffer = io.BytesIO()
    PIL.Image.fromarray(blended).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def _shift_batch(batch: dict, size: int) -> dict:
    return {"image": [_mnist_m_image(image, size) for image in batch["image"]], "label": batch["label"]}


def _shift_split(ds: Dataset, split: str, size: int) -> Dataset:
    key = "|".join(
        (
            "hf_transfer",
            "digits_m",
            _MNIST_M_VERSION,
            ds._fingerprint,
            str(size),
            code_key(_mnist_m_image, _shift_batch),
            importlib.metadata.version("scikit-learn"),
        )
    )
    return ds.map(
        _shift_batch,
        batched=True,
        batch_size=256,
        fn_kwargs={"size": size},
        features=Features({"image": Image(), "label": ds.features["label"]}),
        new_fingerprint=hashlib.sha256(key.encode()).hexdigest()[:16],
        desc=f"Blending digits over photos ({split})",
    )


def create_digits_m(
    args: DataArguments, cache_dir: Optional[str] = None, image_size: int = MNIST_M_IMAGE_SIZE
) -> DatasetDict:
    """The `digits_m` domain: `digits` (same splits and subsets for the same `args`) blended over colour photos.

    Deterministic and cached: two calls give identical pixels and identical `_fingerprint`s per split.
    """
    base = load_transfer_dataset(dataclasses.replace(args, dataset_name="digits"), cache_dir=cache_dir)
    shifted = DatasetDict({split: _shift_split(ds, split, image_size) for split, ds in base.items()})
    logger.info(
        "Derived digits_m (MNIST-M-style %dx%d colour digits): %s",
        image_size,
        image_size,
        ", ".join(f"{split}={len(ds)}" for split, ds in shifted.items()),
    )
    return shifted
