"""Reliability of data reading and caches: labels keep the meaning they have in the file, every file format stops on
a byte that is not UTF-8, regression targets fit float32, cached features are verified, and a cache folder that
cannot be written is named as such.

Each case here failed on the code before it was handled (a silent re-reading, a crash after training, a wrong cause).
"""

import errno
import json
import logging
import os
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hf_transfer.data import DataArguments, infer_task, load_transfer_dataset
from hf_transfer.errors import DataError
from hf_transfer.probing import FeatureCache, extract_features
from recipe_runner import assert_ok, run_recipe_in_process

# A folder nobody may create (in sysfs): an unwritable cache without changing permissions, which root ignores.
UNWRITABLE = Path("/sys/hf_transfer_test_cache")


@pytest.fixture
def unwritable() -> Path:
    try:
        UNWRITABLE.mkdir()
    except OSError as err:
        if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return UNWRITABLE
        raise
    UNWRITABLE.rmdir()
    pytest.skip(f"{UNWRITABLE.parent} can be written here")


def _write(path: Path, header: str, labels: list, sep: str = ",") -> str:
    path.write_text(header + "\n" + "".join(f"text {i}{sep}{label}\n" for i, label in enumerate(labels)))
    return str(path)


def _load(path: str, task: str = "single_label", **kwargs):
    return load_transfer_dataset(DataArguments(train_file=path, **kwargs), cache_dir=None, task=task)


# ------------------------------------------------------------------------------------------------ labels


def test_a_separator_in_labels_stops_auto_and_names_stay_whole_under_single_label(tmp_path):
    """`Smith, John` was read as two labels (`Smith`, `John`) with an INFO line; now auto asks which it is."""
    path = _write(tmp_path / "names.csv", "text,label", ['"Smith, John"', '"Doe, Jane"'] * 10)
    with pytest.raises(DataError, match=r"row 0: 'Smith, John'.*--task multi_label if .* --task single_label if ','"):
        _load(path, task="auto")
    names = _load(path, task="single_label")
    assert names["train"].features["label"].names == ["Doe, Jane", "Smith, John"]
    several = _load(path, task="multi_label")  # asked for: the separator splits
    assert infer_task(several) == "multi_label"
    assert several["train"].features["label"].feature.names == ["Doe", "Jane", "John", "Smith"]


def test_decimal_commas_are_never_read_as_labels_or_numbers(tmp_path):
    """`1,5` in a tsv became the labels `1` and `5` (multi-label) under auto."""
    path = _write(tmp_path / "scores.tsv", "text\tlabel", ["1,5", "2,25", "3"] * 8, sep="\t")
    with pytest.raises(DataError, match=r"decimal comma \(row 0: '1,5', row 1: '2,25'.*write them with a dot"):
        _load(path, task="auto")
    with pytest.raises(DataError, match=r"decimal comma \(row 0: '1,5'"):  # whatever the separator
        _load(path, task="auto", label_separator="|")
    with pytest.raises(DataError, match=r"holds text \(e\.g\. rows 0, 1, 3.*'1,5'.*write 1\.5, not 1,5"):
        _load(path, task="regression")
    dotted = _write(tmp_path / "dotted.tsv", "text\tlabel", ["1.5", "2.25", "3"] * 8, sep="\t")
    targets = _load(dotted, task="auto")  # the dot format is a number: a regression target
    assert infer_task(targets) == "regression"
    assert sorted(set(np.round(targets["train"]["label"], 4))) == [1.5, 2.25, 3.0]


def test_one_number_written_differently_is_never_merged(tmp_path):
    """`1`, `01` and `1.0` of a csv were one class (pandas read them as the float 1.0); ids written with leading
    zeros lost them (`007` became class `7`)."""
    twins = _write(tmp_path / "twins.csv", "text,label", ["1", "01", "1.0", "2"] * 6)
    with pytest.raises(DataError, match=r"Labels '01' and '1' and '1\.0' of .* one number written in different ways"):
        _load(twins)
    codes = _load(_write(tmp_path / "codes.csv", "text,label", ["007", "008", "010"] * 10))
    assert codes["train"].features["label"].names == ["007", "008", "010"]
    # A typed column's integer ids meet a csv's names: `1` is 1, `1.0` in another file is a clash, not a merge.
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(24)], "label": [i % 3 for i in range(24)]})
    frame.to_parquet(tmp_path / "train.parquet")
    same = _write(tmp_path / "same.csv", "text,label", ["0", "1", "2"])
    data = load_transfer_dataset(DataArguments(train_file=str(tmp_path / "train.parquet"), validation_file=same))
    assert data["validation"]["label"] == [0, 1, 2] and data["train"].features["label"].names == ["0", "1", "2"]
    other = _write(tmp_path / "other.csv", "text,label", ["0", "1.0", "2"])
    with pytest.raises(DataError, match=r"Labels '1' and '1\.0' of .* one number written in different ways"):
        load_transfer_dataset(DataArguments(train_file=str(tmp_path / "train.parquet"), validation_file=other))


def test_integer_ids_in_a_csv_keep_their_numeric_order(tmp_path):
    """Read as text, a csv's ids `0`..`11` still name classes 0..11 (not `0`, `1`, `10`, `11`, `2`, ...)."""
    data = _load(
        _write(tmp_path / "ids.csv", "text,label", [i % 12 for i in range(48)]), validation_split_percentage=0.5
    )
    assert data["train"].features["label"].names == [str(i) for i in range(12)]
    assert all(int(text.split()[1]) % 12 == label for text, label in zip(data["train"]["text"], data["train"]["label"]))


# ------------------------------------------------------------------------------------------------ targets


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_target_beyond_float32_stops_before_training(suffix, tmp_path):
    """1e39 passed the finiteness check (done in float64), became inf in float32 and crashed the evaluation."""
    values = [0.5, 1e39, 2.25, 3.0] * 5
    path = tmp_path / f"big{suffix}"
    if suffix == ".csv":
        _write(path, "text,score", values)
    else:
        path.write_text("".join(json.dumps({"text": f"t{i}", "score": v}) + "\n" for i, v in enumerate(values)))
    with pytest.raises(DataError, match=r"5 rows with a target that is infinite or beyond float32.*row 1: 1e\+39"):
        _load(str(path), task="regression", label_column="score")
    lists = tmp_path / "lists.jsonl"
    lists.write_text(
        "".join(json.dumps({"text": f"t{i}", "scores": [v, 1.0 + i]}) + "\n" for i, v in enumerate(values))
    )
    with pytest.raises(DataError, match=r"infinite or beyond float32.*row 1: 1e\+39"):
        _load(str(lists), task="regression", label_column="scores")


# ------------------------------------------------------------------------------------------------ files


def test_a_conll_file_with_a_byte_that_is_not_utf8_stops_like_csv(tmp_path):
    """CoNLL files were read with replacement characters, silently."""
    path = tmp_path / "latin1.conll"
    path.write_bytes(b"alice\tB-PER\nmet\tO\n\ncaf\xe9\tO\nbob\tB-PER\n")
    message = f"--train_file '{path}' is not UTF-8 text (byte b'\\xe9' on line 4: invalid continuation byte)"
    with pytest.raises(DataError) as caught:
        _load(str(path), task="auto")
    assert str(caught.value).startswith(message) and "iconv" in str(caught.value)
    latin1_csv = tmp_path / "latin1.csv"
    latin1_csv.write_bytes(b"text,label\nbon,pos\nmauvais,neg\n\ncaf\xe9 bon,pos\n")
    with pytest.raises(DataError, match=r"is not UTF-8 text \(byte b'\\xe9' on line 5: invalid continuation byte\)"):
        _load(str(latin1_csv))  # the same wording for both


def test_a_conll_file_with_a_bad_byte_is_one_line_in_the_recipe(tiny_bert, tmp_path, offline):
    path = tmp_path / "latin1.conll"
    path.write_bytes(b"alice\tB-PER\nmet\tO\n\ncaf\xe9\tO\n")
    run = run_recipe_in_process(
        "finetune.py", "--model_name_or_path", tiny_bert, "--train_file", str(path), output_dir=tmp_path / "out"
    )
    assert run.returncode == 2, run.output[-3000:]
    assert f"error: --train_file '{path}' is not UTF-8 text (byte b'\\xe9' on line 4" in run.output
    assert "Traceback" not in run.output


# ------------------------------------------------------------------------------------------------ feature cache


def _swap_first_rows(file: Path, tensor: str) -> None:
    """Swap rows 0 and 1 of `tensor` inside a safetensors file: same size, still a valid file."""
    data = bytearray(file.read_bytes())
    (header_size,) = struct.unpack("<Q", data[:8])
    entry = json.loads(data[8 : 8 + header_size])[tensor]
    start = 8 + header_size + entry["data_offsets"][0]
    row = (entry["data_offsets"][1] - entry["data_offsets"][0]) // entry["shape"][0]
    first, second = data[start : start + row], data[start + row : start + 2 * row]
    data[start : start + 2 * row] = second + first
    file.write_bytes(bytes(data))


def test_cached_features_whose_rows_moved_are_extracted_again(tmp_path, caplog):
    """A cached file with rows rearranged (same size, valid) was read back, and a different probe saved."""
    cache = FeatureCache(tmp_path)
    features = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    cache.save("k", {"features": features, "labels": torch.tensor([0, 1, 0, 1])})
    assert torch.equal(cache.load("k")["features"], features)
    size = cache.path("k").stat().st_size
    _swap_first_rows(cache.path("k"), "features")
    assert cache.path("k").stat().st_size == size
    with caplog.at_level(logging.WARNING, logger="hf_transfer.probing.cache"):
        assert cache.load("k") is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "features no longer matches the checksum" in warnings[0], warnings
    from safetensors.torch import save_file

    save_file({"features": features}, str(cache.path("old")))  # written without checksums: not trusted either
    assert cache.load("old") is None


def test_a_probe_recomputes_features_when_the_cache_changed(tmp_path):
    from torch import nn

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.classifier = nn.Linear(2, 3), nn.Linear(3, 2)
            self.calls = 0

        def forward(self, x, **_):
            self.calls += 1
            return self.classifier(self.body(x))

    torch.manual_seed(0)
    model = Model()
    rows = [{"x": torch.randn(2), "labels": torch.tensor(i % 2)} for i in range(6)]

    def collate(batch):
        return {k: torch.stack([row[k] for row in batch]) for k in batch[0]}

    cache = FeatureCache(tmp_path)
    first, _ = extract_features(model, rows, collate, cache=cache, cache_key="k", batch_size=4)
    calls = model.calls
    _swap_first_rows(cache.path("k"), "features")
    again, _ = extract_features(model, rows, collate, cache=cache, cache_key="k", batch_size=4)
    assert model.calls > calls and torch.equal(again, first)  # recomputed, not the rearranged rows


# ------------------------------------------------------------------------------------------------ unwritable caches


def _read_only(monkeypatch, folder: Path) -> None:
    """Creating anything under `folder` fails as on a read-only file system."""
    real = os.makedirs

    def makedirs(path, *args, **kwargs):
        if Path(path) == folder or folder in Path(path).parents:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "makedirs", makedirs)


def test_an_unwritable_datasets_cache_is_named_not_blamed_on_the_file(tmp_path, monkeypatch):
    """It read "Could not read ... Check that the file is valid .csv"."""
    path = _write(tmp_path / "good.csv", "text,label", ["a", "b"] * 10)
    folder = tmp_path / "read-only"
    _read_only(monkeypatch, folder)
    with pytest.raises(DataError) as caught:
        load_transfer_dataset(DataArguments(train_file=path), cache_dir=str(folder))
    message = str(caught.value)
    assert message.startswith(f"Cannot write the datasets cache '{folder}': Read-only file system"), message
    assert "--cache_dir" in message and "HF_DATASETS_CACHE" in message and "valid" not in message


def test_an_unwritable_datasets_cache_is_one_line_in_the_recipe(tiny_bert, tmp_path, offline, unwritable):
    path = _write(tmp_path / "good.csv", "text,label", ["a", "b"] * 10)
    run = run_recipe_in_process(
        "finetune.py",
        *("--model_name_or_path", tiny_bert, "--train_file", path, "--cache_dir", str(UNWRITABLE)),
        output_dir=tmp_path / "out",
    )
    assert run.returncode == 2, run.output[-3000:]
    line = next(line for line in run.output.splitlines() if line.startswith("error:"))
    assert line.startswith(f"error: Cannot write the datasets cache '{UNWRITABLE}': "), line
    assert "pass --cache_dir with a writable folder, or set HF_DATASETS_CACHE (or HF_HOME)" in line


def test_an_unwritable_feature_cache_is_one_warning_and_the_run_goes_on(tmp_path, caplog, unwritable):
    """It ended in "free space" (read-only) or a traceback (permission)."""
    cache = FeatureCache(UNWRITABLE / "features")
    with caplog.at_level(logging.WARNING, logger="hf_transfer.probing.cache"):
        assert cache.save("k", {"features": torch.ones(2, 2)}) is None
        assert cache.save("k2", {"features": torch.ones(2, 2)}) is None  # not tried, nor reported, again
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"Cannot write the feature cache '{UNWRITABLE / 'features'}': ")
    assert "--feature_cache_dir" in warnings[0] and "HF_TRANSFER_CACHE" in warnings[0]
    assert "free space" not in warnings[0]


def test_a_probe_with_an_unwritable_feature_cache_finishes(tiny_bert, tmp_path, offline, unwritable):
    path = _write(tmp_path / "good.csv", "text,label", ["good", "bad"] * 16)
    run = assert_ok(
        run_recipe_in_process(
            "finetune.py",
            *("--model_name_or_path", tiny_bert, "--train_file", path, "--strategy", "linear_probe"),
            *("--feature_cache_dir", str(UNWRITABLE / "features")),
            output_dir=tmp_path / "out",
        )
    )
    assert run.output.count(f"Cannot write the feature cache '{UNWRITABLE / 'features'}'") == 1, run.output[-3000:]
