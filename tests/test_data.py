"""Tests for hf_transfer.data: built-in offline sets, local files and folders, and every bad-input message."""

import json
import os
import subprocess
import sys
from collections import Counter

import datasets
import numpy as np
import pandas as pd
import PIL.Image
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Image

from hf_transfer.data import BUILTIN_DATASETS, DataArguments, infer_modality, load_transfer_dataset, verify_images
from hf_transfer.data import builtin_sets as data_module
from hf_transfer.errors import DataError


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("hf_datasets_cache"))


def load(cache_dir, **kwargs) -> DatasetDict:
    return load_transfer_dataset(DataArguments(**kwargs), cache_dir=cache_dir)


def fingerprints(dd: DatasetDict) -> dict:
    return {split: ds._fingerprint for split, ds in dd.items()}


def label_counts(ds: Dataset) -> Counter:
    return Counter(ds["label"])


def assert_canonical(dd: DatasetDict, input_column: str, names: list) -> None:
    assert "train" in dd and "validation" in dd
    for split, ds in dd.items():
        assert sorted(ds.column_names) == sorted([input_column, "label"]), split
        assert isinstance(ds.features["label"], ClassLabel)
        assert ds.features["label"].names == names
        assert ds.features == dd["train"].features, split
        if input_column == "text":
            assert ds.features["text"] == datasets.Value("string")
        else:
            assert isinstance(ds.features["image"], Image)


# --------------------------------------------------------------------------------------------------
# Built-in data sets

SENTIMENT = ["negative", "neutral", "positive"]


@pytest.mark.parametrize(
    "name, modality, names, sizes",
    [
        ("tweet_sentiment", "text", SENTIMENT, {"train": 27473, "validation": 3053, "test": 7632}),
        ("drug_reviews", "text", SENTIMENT, {"train": 540, "validation": 60, "test": 379}),
        (
            "bbc_news",
            "text",
            ["business", "entertainment", "politics", "sports", "tech"],
            {"train": 1602, "validation": 178, "test": 445},
        ),
        ("digits", "vision", [str(i) for i in range(10)], {"train": 1293, "validation": 144, "test": 360}),
    ],
)
def test_builtin_loads_canonical_and_stable(cache_dir, name, modality, names, sizes):
    dd = load(cache_dir, dataset_name=name)
    assert_canonical(dd, "text" if modality == "text" else "image", names)
    assert {split: len(ds) for split, ds in dd.items()} == sizes
    assert infer_modality(dd) == modality
    assert set(label_counts(dd["test"])) == set(range(len(names)))
    assert fingerprints(load(cache_dir, dataset_name=name)) == fingerprints(dd)


def test_tweet_and_drug_reviews_share_labels(cache_dir):
    tweets = load(cache_dir, dataset_name="tweet_sentiment")
    drugs = load(cache_dir, dataset_name="drug_reviews")
    assert tweets["train"].features == drugs["train"].features  # a domain-shift pair: same ClassLabel
    assert sum(label_counts(tweets[s])[0] for s in tweets) == 16186  # all negative tweets kept
    review = drugs["train"][0]["text"]
    assert not review.startswith('"') and "&#039;" not in review


def test_builtin_images_are_grayscale_pil(cache_dir):
    image = load(cache_dir, dataset_name="digits")["train"][0]["image"]
    assert isinstance(image, PIL.Image.Image) and image.mode == "L" and image.size == (8, 8)
    assert max(image.getdata()) > 200  # 0..16 scaled to 0..255


@pytest.fixture(scope="module")
def fashion(cache_dir):
    if not data_module.FASHION_MNIST_DIR.is_dir():
        pytest.skip("dataset-fashion-mnist is not installed")
    return load(cache_dir, dataset_name="fashion_mnist")


def test_fashion_mnist(cache_dir, fashion, monkeypatch):
    assert_canonical(fashion, "image", list(data_module.FASHION_MNIST_CLASSES))
    assert {split: len(ds) for split, ds in fashion.items()} == {"train": 54000, "validation": 6000, "test": 10000}
    assert label_counts(fashion["test"]) == {i: 1000 for i in range(10)}
    image = fashion["test"][0]["image"]
    assert image.mode == "L" and image.size == (28, 28)
    assert fashion["train"].features["label"].names[0] == "T-shirt/top"

    def read_idx_again(path):
        raise AssertionError(f"second load re-read {path}: it must come from the datasets cache")

    monkeypatch.setattr(data_module, "_read_idx", read_idx_again)
    again = load(cache_dir, dataset_name="fashion_mnist")
    assert fingerprints(again) == fingerprints(fashion)


def test_fashion_mnist_missing_says_how_to_install(cache_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(DataError, match=r"sudo apt-get install dataset-fashion-mnist"):
        load(cache_dir, dataset_name="fashion_mnist")


def test_fingerprints_stable_across_processes(cache_dir):
    script = (
        "from hf_transfer.data import DataArguments, load_transfer_dataset as l\n"
        f"dd = l(DataArguments(dataset_name='digits', max_train_samples=100), cache_dir={cache_dir!r})\n"
        "print(sorted((k, v._fingerprint) for k, v in dd.items()))\n"
    )

    def run() -> str:
        result = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        return result.stdout.strip().splitlines()[-1]

    here = load(cache_dir, dataset_name="digits", max_train_samples=100)
    assert run() == str(sorted(fingerprints(here).items()))


# --------------------------------------------------------------------------------------------------
# Subsampling and splitting


def test_max_samples_are_seeded_stratified_subsets(cache_dir):
    dd = load(cache_dir, dataset_name="tweet_sentiment", max_train_samples=30, max_eval_samples=12)
    assert len(dd["train"]) == 30 and len(dd["validation"]) == 12 and len(dd["test"]) == 12
    counts = label_counts(dd["train"])
    assert set(counts) == {0, 1, 2}  # the file is sorted by label: the first 30 rows are all negative
    assert counts[0] > counts[2]  # proportional: negatives outnumber positives about 2.3:1
    assert fingerprints(
        load(cache_dir, dataset_name="tweet_sentiment", max_train_samples=30, max_eval_samples=12)
    ) == fingerprints(dd)
    other_seed = load(cache_dir, dataset_name="tweet_sentiment", max_train_samples=30, split_seed=7)
    assert other_seed["train"]._fingerprint != dd["train"]._fingerprint
    assert other_seed["train"]["text"] != dd["train"]["text"]


def test_max_samples_larger_than_split_keeps_all(cache_dir):
    dd = load(cache_dir, dataset_name="drug_reviews", max_train_samples=10_000, max_eval_samples=10_000)
    assert {split: len(ds) for split, ds in dd.items()} == {"train": 540, "validation": 60, "test": 379}


def test_validation_carving_is_stratified(cache_dir):
    dd = load(cache_dir, dataset_name="tweet_sentiment", validation_split_percentage=0.25)
    train, validation = label_counts(dd["train"]), label_counts(dd["validation"])
    assert len(dd["validation"]) == pytest.approx(0.25 * (len(dd["train"]) + len(dd["validation"])), abs=1)
    for label in range(3):
        share = train[label] + validation[label]
        assert abs(validation[label] - 0.25 * share) <= 1, (label, validation[label], share)


# --------------------------------------------------------------------------------------------------
# Local files

ROWS = [
    ("good film", "pos"),
    ("bad film", "neg"),
    ("great plot", "pos"),
    ("dull plot", "neg"),
    ("fine cast", "neu"),
    ("okay cast", "neu"),
] * 5


def write_table(path, frame: pd.DataFrame) -> str:
    suffix = os.path.splitext(str(path))[1]
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif suffix == ".json":
        path.write_text(json.dumps(frame.to_dict(orient="records")))
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif suffix == ".parquet":
        frame.to_parquet(path)
    return str(path)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".json", ".jsonl", ".parquet"])
def test_files_with_string_labels(cache_dir, tmp_path, suffix):
    frame = pd.DataFrame(ROWS, columns=["text", "label"]).assign(extra=1)
    train = write_table(tmp_path / f"train{suffix}", frame)
    test = write_table(tmp_path / f"test{suffix}", frame.head(6))
    dd = load(cache_dir, train_file=train, test_file=test, validation_split_percentage=0.2)
    assert_canonical(dd, "text", ["neg", "neu", "pos"])  # sorted names from train
    assert {split: len(ds) for split, ds in dd.items()} == {"train": 24, "validation": 6, "test": 6}
    assert label_counts(dd["validation"]) == {0: 2, 1: 2, 2: 2}
    assert dd["test"][0] == {"text": "good film", "label": 2}
    assert fingerprints(
        load(cache_dir, train_file=train, test_file=test, validation_split_percentage=0.2)
    ) == fingerprints(dd)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_files_with_int_labels(cache_dir, tmp_path, suffix):
    frame = pd.DataFrame({"sentence": [t for t, _ in ROWS], "category": [i % 3 for i in range(len(ROWS))]})
    train = write_table(tmp_path / f"train{suffix}", frame)
    validation = write_table(tmp_path / f"validation{suffix}", frame.head(6))
    dd = load(cache_dir, train_file=train, validation_file=validation)
    assert_canonical(dd, "text", ["0", "1", "2"])  # auto-detected 'sentence' / 'category'
    assert dd["validation"]["label"] == [0, 1, 2, 0, 1, 2]  # ids kept as they are
    assert "test" not in dd


def test_non_contiguous_int_and_integral_float_labels(cache_dir, tmp_path):
    frame = pd.DataFrame({"text": [t for t, _ in ROWS], "rating": [float(1 + 4 * (i % 2)) for i in range(len(ROWS))]})
    dd = load(cache_dir, train_file=write_table(tmp_path / "train.parquet", frame))
    assert dd["train"].features["label"].names == ["1", "5"]  # whole floats of a typed column are integer ids
    assert set(dd["train"]["label"]) == {0, 1}
    dd = load(cache_dir, train_file=write_table(tmp_path / "train.csv", frame))
    assert dd["train"].features["label"].names == ["1.0", "5.0"]  # a csv's cells are class names as written


def test_column_flags_pick_columns(cache_dir, tmp_path):
    frame = pd.DataFrame({"body": [t for t, _ in ROWS], "y": [label for _, label in ROWS], "text": "decoy"})
    path = write_table(tmp_path / "train.csv", frame)
    dd = load(cache_dir, train_file=path, text_column="body", label_column="y")
    assert dd["train"].column_names == ["text", "label"]
    assert "decoy" not in dd["train"]["text"]


# --------------------------------------------------------------------------------------------------
# Images


def make_image_folder(root, classes=("cat", "dog"), per_class=10):
    for index, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((4, 4, 3), 20 * i + index, dtype=np.uint8)
            PIL.Image.fromarray(pixels).save(root / name / f"{name}_{i}.png")
    return str(root)


def test_image_folders(cache_dir, tmp_path):
    train = make_image_folder(tmp_path / "train")
    dd = load(cache_dir, train_dir=train, validation_split_percentage=0.2)
    assert_canonical(dd, "image", ["cat", "dog"])
    assert {split: len(ds) for split, ds in dd.items()} == {"train": 16, "validation": 4}
    assert label_counts(dd["validation"]) == {0: 2, 1: 2}
    assert isinstance(dd["train"][0]["image"], PIL.Image.Image)
    assert infer_modality(dd) == "vision"

    dd = load(
        cache_dir,
        train_dir=train,
        validation_dir=make_image_folder(tmp_path / "val", per_class=2),
        test_dir=make_image_folder(tmp_path / "test", per_class=3),
    )
    assert {split: len(ds) for split, ds in dd.items()} == {"train": 20, "validation": 4, "test": 6}


def test_corrupt_image_in_folder_names_the_file(cache_dir, tmp_path):
    train = make_image_folder(tmp_path / "train")
    (tmp_path / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"broken\.png.*Remove or fix"):
        load(cache_dir, train_dir=train)


def test_image_paths_in_csv(cache_dir, tmp_path):
    make_image_folder(tmp_path / "imgs")
    paths = sorted(str(p) for p in (tmp_path / "imgs").glob("*/*.png"))
    frame = pd.DataFrame({"img": paths, "label": [os.path.basename(os.path.dirname(p)) for p in paths]})
    dd = load(cache_dir, train_file=write_table(tmp_path / "train.csv", frame), validation_split_percentage=0.2)
    assert_canonical(dd, "image", ["cat", "dog"])
    assert dd["train"][0]["image"].size == (4, 4)

    (tmp_path / "imgs" / "cat" / "cat_0.png").write_bytes(b"garbage")
    frame.loc[0, "img"] = str(tmp_path / "imgs" / "cat" / "cat_0.png")
    with pytest.raises(DataError, match=r"cat_0\.png"):
        load(cache_dir, train_file=write_table(tmp_path / "train2.csv", frame), validation_split_percentage=0.2)


def test_verify_images_accepts_good_images(cache_dir):
    verify_images(load(cache_dir, dataset_name="digits", max_train_samples=20, max_eval_samples=5))


def test_infer_modality(cache_dir):
    assert infer_modality(Dataset.from_dict({"text": ["a"], "label": [0]})) == "text"
    with pytest.raises(DataError, match="no 'text' or 'image' column"):
        infer_modality(Dataset.from_dict({"x": [1]}))


# --------------------------------------------------------------------------------------------------
# Hub ids (no network here)


def test_hub_id_offline_names_it_and_the_builtins(cache_dir, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError, match=r"'nobody/no-such-dataset'.*tweet_sentiment.*HF_HUB_OFFLINE"):
        load(cache_dir, dataset_name="nobody/no-such-dataset")


def test_hub_dataset_splits_and_classlabel(cache_dir, monkeypatch):
    """A Hub-shaped DatasetDict: split aliases, an unlabelled test split (-1), an extra split, ClassLabel kept."""
    label = ClassLabel(names=["neg", "pos"])
    features = datasets.Features({"sentence": datasets.Value("string"), "label": label, "idx": datasets.Value("int32")})
    make = lambda labels: Dataset.from_dict(  # noqa: E731
        {"sentence": [f"s{i}" for i in range(len(labels))], "label": labels, "idx": list(range(len(labels)))},
        features=features,
    )
    hub = DatasetDict(
        {"train": make([0, 1] * 10), "dev": make([1, 0, 1, 0]), "test": make([-1] * 4), "unsupervised": make([-1] * 3)}
    )
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: hub)
    dd = load(cache_dir, dataset_name="someone/glue-like")
    assert list(dd) == ["train", "validation"]
    assert_canonical(dd, "text", ["neg", "pos"])
    assert dd["validation"]["label"] == [1, 0, 1, 0]


# --------------------------------------------------------------------------------------------------
# Argument errors (raised at parse time)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, r"No data source given.*--dataset_name.*--train_file.*--train_dir"),
        ({"dataset_name": "digits", "train_file": "x.csv"}, r"one kind of data source.*--dataset_name.*--train_file"),
        ({"validation_file": "v.csv"}, r"--validation_file needs --train_file"),
        ({"train_dir": ".", "test_dir": None, "validation_file": "v.csv"}, r"one kind of data source"),
        ({"train_file": "train.xlsx"}, r"unknown extension '\.xlsx'.*\.csv"),
        ({"train_file": "missing.csv"}, r"--train_file 'missing.csv' does not exist"),
        ({"train_dir": "no/such/dir"}, r"--train_dir 'no/such/dir' does not exist"),
        ({"dataset_name": "digits", "validation_split_percentage": 0.0}, r"--validation_split_percentage.*got 0.0"),
        ({"dataset_name": "digits", "validation_split_percentage": 10}, r"--validation_split_percentage.*got 10"),
        ({"dataset_name": "digits", "max_train_samples": 0}, r"--max_train_samples must be a positive integer; got 0"),
        ({"dataset_name": "digits", "max_eval_samples": -3}, r"--max_eval_samples must be a positive integer"),
        ({"dataset_name": "digits", "dataset_config_name": "x"}, r"no configs; drop --dataset_config_name"),
        ({"dataset_config_name": "sst2", "train_dir": "."}, r"--dataset_config_name needs --dataset_name"),
        ({"dataset_name": "x/y", "text_column": "a", "image_column": "b"}, r"--text_column or --image_column, not"),
    ],
)
def test_argument_errors(kwargs, message):
    with pytest.raises(DataError, match=message):
        DataArguments(**kwargs)


# --------------------------------------------------------------------------------------------------
# Data errors


@pytest.fixture
def csv_file(tmp_path):
    def write(rows, name="train.csv", columns=("text", "label")) -> str:
        return write_table(tmp_path / name, pd.DataFrame(rows, columns=list(columns)))

    return write


def test_missing_requested_column_lists_available(cache_dir, csv_file):
    path = csv_file(ROWS)
    with pytest.raises(DataError, match=r"'review' \(--text_column\).*Available columns: \['text', 'label'\]"):
        load(cache_dir, train_file=path, text_column="review")
    with pytest.raises(DataError, match=r"'y' \(--label_column\).*Available columns.*Pass --label_column"):
        load(cache_dir, train_file=path, label_column="y")


def test_no_label_column_found(cache_dir, csv_file):
    with pytest.raises(DataError, match=r"No label column.*Available columns: \['text', 'stars'\].*--label_column"):
        load(cache_dir, train_file=csv_file(ROWS, columns=("text", "stars")))
    with pytest.raises(DataError, match=r"label column and the input column are both 'text'"):
        load(cache_dir, train_file=csv_file(ROWS), label_column="text")


def test_image_folder_without_class_folders(cache_dir, tmp_path):
    (tmp_path / "flat").mkdir()
    for i in range(4):
        PIL.Image.new("L", (4, 4)).save(tmp_path / "flat" / f"{i}.png")
    with pytest.raises(DataError, match=r"No label column.*one sub-folder per class"):
        load(cache_dir, train_dir=str(tmp_path / "flat"))


def test_no_text_or_image_column_found(cache_dir, csv_file):
    with pytest.raises(DataError, match=r"No text or image column.*\['utterance', 'label'\].*--text_column.*--image"):
        load(cache_dir, train_file=csv_file(ROWS, columns=("utterance", "label")))


def test_split_missing_a_column(cache_dir, csv_file):
    train = csv_file(ROWS)
    validation = csv_file(ROWS, name="validation.csv", columns=("text", "tag"))
    with pytest.raises(DataError, match=r"Split 'validation'.*no column 'label'"):
        load(cache_dir, train_file=train, validation_file=validation)


def test_fractional_labels(cache_dir, csv_file):
    rows = [(f"t{i}", i % 2 + (0.5 if i == 3 else 0.0)) for i in range(10)]
    with pytest.raises(DataError, match=r"non-integer labels \[1\.5\] \(rows 3\).*integer ids"):
        load(cache_dir, train_file=csv_file(rows))


def test_missing_labels(cache_dir, csv_file):
    rows = [(f"t{i}", None if i in (2, 7) else ["a", "b"][i % 2]) for i in range(10)]
    with pytest.raises(DataError, match=r"Split 'train' has 2 rows with no label \(rows 2, 7"):
        load(cache_dir, train_file=csv_file(rows))


def test_missing_text(cache_dir, csv_file):
    rows = [(None if i == 4 else f"t{i}", i % 2) for i in range(10)]
    with pytest.raises(DataError, match=r"1 rows with no text.*rows 4"):
        load(cache_dir, train_file=csv_file(rows))


def test_unseen_labels(cache_dir, csv_file):
    train = csv_file(ROWS)
    test = csv_file([("x", "pos"), ("y", "zebra")], name="test.csv")
    with pytest.raises(DataError, match=r"Split 'test' has labels never seen in train: \['zebra'\]"):
        load(cache_dir, train_file=train, test_file=test)


def test_unseen_class_in_validation_folder(cache_dir, tmp_path):
    train = make_image_folder(tmp_path / "train")
    validation = make_image_folder(tmp_path / "val", classes=("cat", "bird"), per_class=2)
    with pytest.raises(DataError, match=r"Split 'validation' has labels never seen in train: \['bird'\]"):
        load(cache_dir, train_dir=train, validation_dir=validation)


@pytest.mark.parametrize("content", ["", "text,label\n"])
def test_empty_file(cache_dir, tmp_path, content):
    (tmp_path / "validation.csv").write_text(content)
    train = write_table(tmp_path / "train.csv", pd.DataFrame(ROWS, columns=["text", "label"]))
    with pytest.raises(DataError, match=r"split 'validation' (has no rows|is empty)"):
        load(cache_dir, train_file=train, validation_file=str(tmp_path / "validation.csv"))


def test_single_class(cache_dir, csv_file):
    with pytest.raises(DataError, match=r"1 class\(es\) \['pos'\]; a classifier needs at least 2"):
        load(cache_dir, train_file=csv_file([(f"t{i}", "pos") for i in range(10)]))


def test_class_too_small_to_stratify(cache_dir, csv_file):
    rows = ROWS + [("lonely", "rare")]
    with pytest.raises(DataError, match=r"class 'rare' has only 1 example.*--validation_file"):
        load(cache_dir, train_file=csv_file(rows))
    # with a validation file nothing is carved, so the rare class is fine
    dd = load(cache_dir, train_file=csv_file(rows), validation_file=csv_file(ROWS[:6], name="validation.csv"))
    assert dd["train"].features["label"].names == ["neg", "neu", "pos", "rare"]


def test_too_few_rows_to_carve(cache_dir, csv_file):
    rows = [("a", "x"), ("b", "x"), ("c", "y"), ("d", "y")]
    with pytest.raises(DataError, match=r"Change --validation_split_percentage"):
        load(cache_dir, train_file=csv_file(rows), validation_split_percentage=0.1)


def test_all_builtins_listed():
    assert BUILTIN_DATASETS == (
        "tweet_sentiment",
        "drug_reviews",
        "drug_reviews_usefulness",
        "bbc_news",
        "twitter_ner",
        "conll2003_news",
        "twitter_entity_types",
        "fashion_mnist",
        "fashion_mnist_mosaics",
        "fashion_mnist_mosaic_counts",
        "digits",
    )


def test_train_samples_per_class_keeps_a_seeded_label_budget():
    import collections

    from hf_transfer.data import DataArguments, load_transfer_dataset
    from hf_transfer.errors import DataError

    splits = load_transfer_dataset(DataArguments(dataset_name="digits", train_samples_per_class=5, split_seed=3))
    assert collections.Counter(splits["train"]["label"]) == {label: 5 for label in range(10)}
    again = load_transfer_dataset(DataArguments(dataset_name="digits", train_samples_per_class=5, split_seed=3))
    assert again["train"]["image"] == splits["train"]["image"]  # the same rows for the same seed
    other = load_transfer_dataset(DataArguments(dataset_name="digits", train_samples_per_class=5, split_seed=4))
    assert other["train"]["image"] != splits["train"]["image"]
    assert len(splits["validation"]) == len(load_transfer_dataset(DataArguments(dataset_name="digits"))["validation"])
    with pytest.raises(DataError, match="--train_samples_per_class must be a positive integer"):
        DataArguments(dataset_name="digits", train_samples_per_class=0)


def test_train_samples_seed_changes_the_labelled_rows_not_the_evaluation_rows():
    from hf_transfer.data import DataArguments, load_transfer_dataset

    def load(seed):
        return load_transfer_dataset(
            DataArguments(
                dataset_name="digits", train_samples_per_class=3, max_eval_samples=50, train_samples_seed=seed
            )
        )

    a, b = load(0), load(1)
    assert a["train"]["image"] != b["train"]["image"]
    assert a["validation"]["image"] == b["validation"]["image"] and a["test"]["image"] == b["test"]["image"]
