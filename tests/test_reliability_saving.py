"""Reliability of what a run writes and what it loads: a disk that refuses the model, its processor, a checkpoint or
the model card (full, over quota, read-only) ends the run with one line naming the folder and the fix (exit 2) and
leaves nothing half-written that could pass for a saved model; a model folder with its own code or a pickle torch will
not load safely is refused in one line, by the recipes and by `hf-transfer rank` alike.

Each case here failed on the code before it was handled (a traceback, exit 1, or a model folder that looked whole).
"""

import argparse
import errno
import json
import shutil
from pathlib import Path

import pytest
import torch

from hf_transfer.outputs import OutputWriteError, refused_write_errno, write_errors_as_one_line
from recipe_runner import TINY_TWEETS_RUN, run_recipe_in_process

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RUN = TINY_TWEETS_RUN

# What torch's zip writer raises when the disk fills under it (it does not say why).
TORCH_FULL_DISK = "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"
# What safetensors (Rust) raises on a full disk: not an OSError.
SAFETENSORS_FULL_DISK = 'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left" })'


def _error_line(output: str) -> str:
    assert "Traceback" not in output, output[-3000:]
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output[-3000:]
    return lines[0]


def _refuse_inside(out: Path, code: int):
    """A writer that writes half a file inside `out`, then fails as the disk does (`code`)."""

    def refuse(*args, **kwargs):
        path = next((Path(a) for a in [*args, *kwargs.values()] if isinstance(a, (str, Path))), None)
        if path is not None and out.resolve() in path.resolve().parents:
            path = path / "tokenizer.json" if path.is_dir() else path  # a folder's writer: its first file
            path.write_bytes(b"half")
            raise OSError(code, "refused", str(path))
        raise AssertionError(f"unexpected write {args}")

    return refuse


# ---------------------------------------------------------------------------------------------- the model


@pytest.mark.parametrize(
    "strategy, code, fix",
    [
        ("full", errno.ENOSPC, "free space on that disk (or pass --output_dir on another disk)"),
        ("full", errno.EDQUOT, "free space on that disk"),
        ("linear_probe", errno.ENOSPC, "free space on that disk"),
        ("full", errno.EROFS, "writable (or pass another --output_dir)"),
        ("linear_probe", errno.EACCES, "writable (or pass another --output_dir)"),
    ],
)
def test_a_refused_model_write_is_one_line_and_leaves_no_model(
    strategy, code, fix, tiny_bert, tmp_path, offline, monkeypatch
):
    import transformers.modeling_utils

    out = tmp_path / "out"
    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", _refuse_inside(out, code))
    run = run_recipe_in_process(
        "finetune.py", "--model_name_or_path", tiny_bert, *RUN, "--strategy", strategy, output_dir=out
    )
    assert run.returncode == 2, run.output[-3000:]
    line = _error_line(run.output)
    assert line.startswith(f"error: Could not write the model in {out} (") and fix in line, line
    assert "nothing half-written was left there" in line
    left = sorted(p.name for p in out.iterdir())
    assert not [name for name in left if name.endswith((".safetensors", ".bin")) or name.startswith(".staging")], left
    assert "config.json" not in left and "tokenizer.json" not in left  # no model folder that looks saved


def test_a_refused_processor_write_leaves_no_model_that_looks_saved(tiny_bert, tmp_path, offline, monkeypatch):
    """The tokenizer used to be written after the model was moved into place: a full disk then left a model folder
    without its tokenizer."""
    from transformers import PreTrainedTokenizerBase

    out = tmp_path / "out"
    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", _refuse_inside(out, errno.ENOSPC))
    run = run_recipe_in_process(
        "finetune.py", "--model_name_or_path", tiny_bert, *RUN, "--strategy", "full", output_dir=out
    )
    assert run.returncode == 2, run.output[-3000:]
    assert _error_line(run.output).startswith(f"error: Could not write the model in {out} (the disk is full")
    assert not list(out.glob("*.safetensors")) and not list(out.glob(".staging-*"))


def test_a_checkpoint_cut_off_by_a_full_disk_is_removed_and_named(tiny_bert, tmp_path, offline, monkeypatch):
    """torch's writer fails with a RuntimeError that does not say why; the checkpoint it leaves (weights, no
    trainer_state.json) is removed, and the newest complete checkpoint is named."""
    out = tmp_path / "out"
    real_save = torch.save
    saves = []

    def fail_second_checkpoint(obj, f, *args, **kwargs):
        if "checkpoint-2" in str(f):
            Path(f).write_bytes(b"half")
            raise RuntimeError(TORCH_FULL_DISK)
        saves.append(str(f))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", fail_second_checkpoint)
    flags = [f for f in RUN if f not in ("--save_strategy", "no")]
    run = run_recipe_in_process(
        "finetune.py",
        "--model_name_or_path",
        tiny_bert,
        *flags,
        "--strategy",
        "full",
        "--save_strategy",
        "steps",
        "--save_steps",
        "1",
        "--per_device_train_batch_size",
        "8",
        output_dir=out,
    )
    assert run.returncode == 2, run.output[-3000:]
    line = _error_line(run.output)
    assert line.startswith(f"error: Could not write a checkpoint in {out} (the disk is full)"), line
    assert f"the newest complete checkpoint is {out / 'checkpoint-1'}; rerun the same command" in line
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-1"]
    assert any("checkpoint-1" in s for s in saves)


def test_a_refused_model_card_is_one_line_that_says_the_model_is_saved(tiny_bert, tmp_path, offline, monkeypatch):
    from huggingface_hub import RepoCard

    out = tmp_path / "out"
    monkeypatch.setattr(RepoCard, "save", _refuse_inside(out, errno.ENOSPC))
    run = run_recipe_in_process(
        "finetune.py", "--model_name_or_path", tiny_bert, *RUN, "--strategy", "full", output_dir=out
    )
    assert run.returncode == 2, run.output[-3000:]
    line = _error_line(run.output)
    assert line.startswith(f"error: Could not write the run record and model card in {out} (the disk is full"), line
    assert f"writing {out / 'README.md'}" in line and f"the model this run trained is saved in {out}" in line
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()


def test_refused_writes_are_told_apart_from_other_errors(tmp_path):
    from safetensors import SafetensorError

    assert refused_write_errno(OSError(errno.ENOSPC, "full")) == errno.ENOSPC
    assert refused_write_errno(SafetensorError(SAFETENSORS_FULL_DISK)) == errno.ENOSPC
    assert refused_write_errno(RuntimeError(TORCH_FULL_DISK)) == errno.ENOSPC
    assert refused_write_errno(PermissionError(errno.EACCES, "denied")) == errno.EACCES
    for other in (OSError(errno.ENOENT, "missing"), ValueError("bad value"), RuntimeError("CUDA out of memory")):
        assert refused_write_errno(other) is None
    with pytest.raises(OutputWriteError, match=r"Could not write the model in .* \(the disk is full\)"):
        with write_errors_as_one_line(tmp_path, "the model"):
            raise SafetensorError(SAFETENSORS_FULL_DISK)
    elsewhere = OSError(errno.ENOSPC, "full", "/somewhere/else/cache.arrow")  # not the output folder's: unchanged
    with pytest.raises(OSError) as raised:
        with write_errors_as_one_line(tmp_path, "the model"):
            raise elsewhere
    assert raised.value is elsewhere


# ---------------------------------------------------------------------------------------------- loading


def _remote_code_folder(tiny_bert: str, folder: Path) -> str:
    shutil.copytree(tiny_bert, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="my-bert", auto_map={"AutoConfig": "configuration_my.MyConfig"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "configuration_my.py").write_text("raise SystemExit('remote code ran')\n")
    return str(folder)


def _unsafe_pickle_folder(tiny_bert: str, folder: Path) -> str:
    from safetensors.torch import load_file

    shutil.copytree(tiny_bert, folder)
    weights = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save({**weights, "extra": argparse.Namespace(a=1)}, folder / "pytorch_model.bin")  # an object: not safe
    return str(folder)


MODEL_FOLDERS = {
    "remote code": (
        _remote_code_folder,
        [
            "is a model with its own code (config.json's auto_map: configuration_my.MyConfig; model_type 'my-bert'",
            "pass --trust_remote_code true",
        ],
    ),
    "pickle": (
        _unsafe_pickle_folder,
        [
            "are a pickle (pytorch_model.bin) that cannot be loaded safely",
            "refused for safety",
            "Convert it to safetensors",
        ],
    ),
}


@pytest.mark.parametrize("kind", list(MODEL_FOLDERS))
def test_a_model_folder_that_is_not_run_is_one_line_in_finetune_and_rank(kind, tiny_bert, tmp_path, offline, capsys):
    from hf_transfer.__main__ import main

    build, messages = MODEL_FOLDERS[kind]
    folder = build(tiny_bert, tmp_path / "model")
    run = run_recipe_in_process(
        "finetune.py", "--model_name_or_path", folder, *RUN, "--strategy", "full", output_dir=tmp_path / "out"
    )
    assert run.returncode == 2, run.output[-3000:]
    line = _error_line(run.output)
    assert folder in line and all(m in line for m in messages), line

    capsys.readouterr()
    args = ["rank", "--candidates", folder, tiny_bert, "--dataset_name", "tweet_sentiment"]
    args += ["--max_train_samples", "20", "--max_eval_samples", "10", "--output_dir", str(tmp_path / "rank")]
    assert main(args) == 2
    line = _error_line(capsys.readouterr().err)
    assert folder in line and all(m in line for m in messages), line
