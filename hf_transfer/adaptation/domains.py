"""Source and target domains: derived built-in domains, loading by name, and the checks that pair them.

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
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np
from datasets import Dataset, DatasetDict, Features, Image

from ..data import DataArguments, infer_modality, load_transfer_dataset
from ..errors import DataError, HfTransferError

if TYPE_CHECKING:
    import PIL.Image

__all__ = [
    "DERIVED_DATASETS",
    "MNIST_M_IMAGE_SIZE",
    "create_digits_m",
    "load_domain_dataset",
    "align_domains",
    "prefix_flags",
]

logger = logging.getLogger(__name__)

MNIST_M_IMAGE_SIZE = 32  # side of the shifted images (MNIST-M keeps MNIST's 28; 8x8 digits are upsampled)
_MNIST_M_VERSION = "1"  # bump when the shift changes, so cached shifted splits are not reused
_CROP_SCALE = (32, 160)  # side of the photo crop before it is resized to the image size


# --------------------------------------------------------------------------------------------------
# The MNIST-M-style shift


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


def _code_bytes(code) -> bytes:
    """Bytecode, constants and names of a function, recursing into nested code (comprehensions): stable
    across processes, unlike `repr`, which shows nested code objects by memory address."""
    consts = [_code_bytes(c) if hasattr(c, "co_code") else repr(c).encode() for c in code.co_consts]
    return code.co_code + b"|".join(consts) + repr(code.co_names).encode()


def _code_key(*functions: Callable) -> str:
    return hashlib.sha256(b"".join(_code_bytes(f.__code__) for f in functions)).hexdigest()[:16]


def _shift_split(ds: Dataset, split: str, size: int) -> Dataset:
    key = "|".join(
        (
            "hf_transfer",
            "digits_m",
            _MNIST_M_VERSION,
            ds._fingerprint,
            str(size),
            _code_key(_mnist_m_image, _shift_batch),
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


_DERIVED_LOADERS: dict[str, Callable[[DataArguments, Optional[str]], DatasetDict]] = {"digits_m": create_digits_m}
DERIVED_DATASETS: tuple[str, ...] = tuple(_DERIVED_LOADERS)


# --------------------------------------------------------------------------------------------------
# Loading one domain


_DATA_FIELDS = tuple(f.name for f in dataclasses.fields(DataArguments))
_FLAG_PATTERN = re.compile(r"--(" + "|".join(sorted(_DATA_FIELDS, key=len, reverse=True)) + r")\b")


def prefix_flags(text: str, prefix: str) -> str:
    """`--train_file` -> `--source_train_file` in help texts and error messages."""
    return _FLAG_PATTERN.sub(lambda m: f"--{prefix}_{m.group(1)}", text)


def load_domain_dataset(
    args: DataArguments, cache_dir: Optional[str] = None, prefix: Optional[str] = None
) -> DatasetDict:
    """`load_transfer_dataset`, plus the derived built-ins (`digits_m`).

    With `prefix` (`source` / `target`), errors name that domain and its flags (`--target_train_file`).
    """
    try:
        if args.dataset_name in _DERIVED_LOADERS:
            return _DERIVED_LOADERS[args.dataset_name](args, cache_dir)
        return load_transfer_dataset(args, cache_dir=cache_dir)
    except HfTransferError as err:
        if prefix is None:
            raise
        raise type(err)(f"{prefix.capitalize()} data: {prefix_flags(str(err), prefix)}") from err


# --------------------------------------------------------------------------------------------------
# Pairing the domains


def align_domains(source: DatasetDict, target: DatasetDict) -> DatasetDict:
    """Check that the two domains can be paired and give the target the source's label ids.

    Same task, different distribution: both domains must hold the same kind of input (text or images) and
    the same classes. Classes listed in another order are re-numbered to the source's ids.

    Raises:
        DataError: the modalities or the label sets differ; the message lists the difference and the fix.
    """
    source_modality, target_modality = infer_modality(source), infer_modality(target)
    if source_modality != target_modality:
        raise DataError(
            f"The source domain is {source_modality} but the target domain is {target_modality}. Domain "
            "adaptation needs the same task on both (only the data distribution differs): pick a "
            f"{source_modality} target data set (--target_dataset_name / --target_train_file / --target_train_dir)."
        )
    source_names = list(source["train"].features["label"].names)
    target_names = list(target["train"].features["label"].names)
    if source_names == target_names:
        return target
    only_source = sorted(set(source_names) - set(target_names))
    only_target = sorted(set(target_names) - set(source_names))
    if only_source or only_target:
        raise DataError(
            f"The source and target label sets differ: only in the source {only_source[:20]}, only in the target "
            f"{only_target[:20]} (source labels: {source_names[:20]}; target labels: {target_names[:20]}). Domain "
            "adaptation needs the same classes in both domains: rename the target's labels to the source's "
            "names (or pick the right --target_label_column), or choose a matching pair of data sets."
        )
    label2id = {name: i for i, name in enumerate(source_names)}
    logger.info("Re-numbering target labels %s to the source order %s", target_names, source_names)
    aligned = target.align_labels_with_mapping(label2id, "label")
    return aligned.cast_column("label", source["train"].features["label"])
