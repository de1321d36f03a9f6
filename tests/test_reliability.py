"""Reliability: bad inputs get one clear line (exit 2) before any model is loaded, runs that train nothing or read
too long texts say so, and nothing ends in a traceback or a silent wrong result.

Each case here failed on the code before it was handled (a traceback, exit 1, or exit 0 with a wrong result).
"""

import json

import pytest
from transformers import AutoModel, AutoTokenizer

from hf_transfer.processing import model_max_length
from recipe_runner import ROOT, TINY_TWEETS_RUN, assert_ok, run_recipe, run_recipe_in_process
from tiny_models import make_tiny

TINY_RUN = [*TINY_TWEETS_RUN, "--strategy", "full"]


# ------------------------------------------------------------------------------------- arguments, early


def _argument_cases(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    read_only = tmp_path / "read-only"
    read_only.mkdir(mode=0o555)
    unknown_key = tmp_path / "unknown-key.yaml"
    unknown_key.write_text("dataset_name: tweet_sentiment\nlerning_rate: 0.001\n")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("dataset_name: [tweet_sentiment\n")
    return {
        "misspelled flag": (
            ["--lerning_rate", "1e-3"],
            "Unknown argument --lerning_rate on the command line. Did you mean --learning_rate",
        ),
        "unknown config key": (
            [str(unknown_key)],
            f"Unknown key lerning_rate in {unknown_key}. Did you mean learning_rate",
        ),
        "yaml syntax": ([str(bad_yaml)], f"Config file {bad_yaml} is not valid YAML at line 2"),
        "negative learning rate": (["--learning_rate", "-1"], "--learning_rate must be positive"),
        "batch size 0": (
            ["--per_device_train_batch_size", "0"],
            "--per_device_train_batch_size must be a positive integer",
        ),
        "missing checkpoint": (
            ["--resume_from_checkpoint", str(tmp_path / "nope")],
            f"--resume_from_checkpoint {tmp_path / 'nope'} does not exist",
        ),
        "output_dir is a file": (["--output_dir", str(a_file)], f"--output_dir {a_file} is a file"),
        "read-only output_dir": (["--output_dir", str(read_only / "run")], "cannot be written"),
        "bad TrainingArguments value": (["--lr_scheduler_type", "sideways"], "sideways"),
        "unknown augmentation": (["--augmentation", "heavy"], "--augmentation 'heavy' is not one of auto, none, basic"),
    }


def test_bad_arguments_stop_before_the_model_is_loaded(tmp_path, offline):
    """The model path does not exist: an argument error that wins over it is checked before any loading."""
    import os

    for name, (args, message) in _argument_cases(tmp_path).items():
        if name == "read-only output_dir" and os.geteuid() == 0:
            continue  # root writes anywhere
        config_first = args[0].endswith(".yaml")
        argv = (
            [*args, "--model_name_or_path", str(tmp_path / "no-model")]
            if config_first
            else ["--model_name_or_path", str(tmp_path / "no-model"), *TINY_RUN, *args]
        )
        if "--output_dir" not in args:
            argv += ["--output_dir", str(tmp_path / name.replace(" ", "-"))]
        run = run_recipe_in_process("finetune.py", *argv)
        assert run.returncode == 2, f"{name}: {run.output[-3000:]}"
        assert message in run.output, f"{name}: {run.output[-3000:]}"
        assert "no-model" not in run.output.split("error:")[-1], f"{name}: the model was looked at first"


RECIPES = sorted(path.name for path in (ROOT / "recipes").glob("*.py"))  # a new recipe is checked as it lands


def test_a_misspelled_flag_under_every_recipe_is_one_line(tmp_path, offline):
    assert {"finetune.py", "align.py", "detect.py"} <= set(RECIPES)
    for recipe in RECIPES:
        run = run_recipe_in_process(recipe, "--max_stepz", "3", output_dir=tmp_path / recipe)
        assert run.returncode == 2, f"{recipe}: {run.output[-2000:]}"
        assert "Unknown argument --max_stepz on the command line. Did you mean --max_steps" in run.output, recipe


def test_every_recipe_prints_its_help(tmp_path, offline):
    """`--help` lists every flag (a `%` in a help text once broke maml's)."""
    for recipe in RECIPES:
        run = run_recipe_in_process(recipe, "--help")
        assert run.returncode == 0, f"{recipe}: {run.output[-2000:]}"
        assert "--output_dir" in run.output and "model_name_or_path" in run.output, recipe  # align: one per tower


# ------------------------------------------------------------------------------ runs that train nothing


def test_zero_epochs_is_a_marked_baseline(tiny_bert, tmp_path, offline):
    out = tmp_path / "out"
    run = assert_ok(
        run_recipe_in_process(
            "finetune.py", "--model_name_or_path", tiny_bert, *TINY_RUN, "--num_train_epochs", "0", output_dir=out
        )
    )
    assert "--num_train_epochs 0: nothing is trained" in run.output
    assert run.results["trained"] is False
    assert "**Untrained:**" in (out / "README.md").read_text()  # a trained run's card: the resume test below


# -------------------------------------------------------------------------------------- sequence length


def test_max_seq_length_is_capped_at_what_the_model_reads(tiny_bert, tmp_path, offline):
    """tiny_bert has 128 positions; BBC articles are longer. Uncapped, evaluation crashed after training."""
    run = assert_ok(
        run_recipe_in_process(
            "finetune.py",
            "--model_name_or_path",
            tiny_bert,
            "--dataset_name",
            "bbc_news",
            "--max_train_samples",
            "16",
            "--max_eval_samples",
            "10",
            "--strategy",
            "full",
            "--num_train_epochs",
            "1",
            "--save_strategy",
            "no",
            "--max_seq_length",
            "100000",
            output_dir=tmp_path / "out",
        )
    )
    assert (
        "--max_seq_length 100000 is more than BertForSequenceClassification reads (128 tokens); using 128" in run.output
    )
    assert json.loads((tmp_path / "out" / "transfer_run.json").read_text())
    assert run.results["eval_samples"] == 10


@pytest.mark.parametrize("architecture, limit", [("bert", 160), ("roberta", 159), ("modernbert", 160)])
def test_model_max_length_reads_each_family_position_limit(architecture, limit, tmp_path):
    """BERT: its position table (160); RoBERTa: the table less its padding offset (positions start at pad + 1;
    the tiny one pads with id 0, so 159); ModernBERT (rotary): the declared maximum."""
    path = make_tiny(architecture, tmp_path / architecture)
    model = AutoModel.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.model_max_length = int(1e30)  # no bound from the tokenizer: the model's own limit decides
    assert model_max_length(model, tokenizer) == limit
    tokenizer.model_max_length = 64
    assert model_max_length(model, tokenizer) == 64


# ----------------------------------------------------------------------------------------------- images


def _saved(image, path):
    image.save(path)
    from PIL import Image

    return Image.open(path)


def test_every_pil_mode_reaches_the_model_as_the_picture_it_shows(tmp_path):
    """A mid-grey (about 120 of 255) in each mode a folder can hold; convert("RGB") made 16-bit greys white."""
    import numpy as np
    from PIL import Image

    from hf_transfer.images import to_rgb

    grey16 = _saved(Image.fromarray(np.full((4, 4), 120 * 257, dtype=np.uint16)), tmp_path / "grey16.png")
    assert grey16.mode in ("I;16", "I")  # what Pillow makes of a 16-bit greyscale PNG
    assert np.asarray(grey16.convert("RGB")).mean() > 250  # the bug: clipped to white
    rgba = Image.new("RGBA", (4, 4), (120, 120, 120, 255))
    rgba.putpixel((0, 0), (0, 0, 0, 0))  # transparent: shows the background
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([120, 120, 120] + [0, 0, 0] * 255)
    palette.info["transparency"] = 1  # index 1 (unused) is transparent: still a palette image with transparency
    cases = {
        "I;16 png": grey16,
        "I;16": Image.frombytes("I;16", (4, 4), np.full((4, 4), 120 * 257, dtype="<u2").tobytes()),
        "I (16-bit data)": Image.fromarray(np.full((4, 4), 120 * 257, dtype=np.int32), mode="I"),
        "I (8-bit data)": Image.fromarray(np.full((4, 4), 120, dtype=np.int32), mode="I"),
        "F in [0, 1]": Image.fromarray(np.full((4, 4), 120 / 255, dtype=np.float32), mode="F"),
        "F in [0, 255]": Image.fromarray(np.full((4, 4), 120.0, dtype=np.float32), mode="F"),
        "L": Image.new("L", (4, 4), 120),
        "LA": Image.new("LA", (4, 4), (120, 255)),
        "P": palette,
        "RGBA": rgba,
        "CMYK": Image.new("RGB", (4, 4), (120, 120, 120)).convert("CMYK"),
    }
    for mode, image in cases.items():
        rgb = np.asarray(to_rgb(image)).astype(int)
        assert rgb.shape == (4, 4, 3), mode
        assert abs(rgb[1:, 1:].mean() - 120) <= 1, (mode, rgb[1:, 1:].mean())
    assert tuple(np.asarray(to_rgb(rgba))[0, 0]) == (255, 255, 255)  # transparent pixel: white background
    assert np.asarray(to_rgb(Image.new("1", (4, 4), 1))).min() == 255


def test_a_16_bit_image_folder_trains_on_grey_not_white(tmp_path):
    """The data path a user takes: an image folder of 16-bit PNGs through the recipes' preprocessing."""
    import numpy as np
    from PIL import Image
    from transformers import ViTImageProcessor

    from hf_transfer.data import DataArguments, load_transfer_dataset
    from hf_transfer.processing import preprocess_dataset

    for label, level in (("dark", 60), ("light", 180)):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.full((8, 8), level * 257, dtype=np.uint16)).save(
                tmp_path / "images" / label / f"{i}.png"
            )
    data = load_transfer_dataset(DataArguments(train_dir=str(tmp_path / "images"), validation_split_percentage=0.34))
    processor = ViTImageProcessor(size={"height": 8, "width": 8}, image_mean=[0, 0, 0], image_std=[1, 1, 1])
    processed = preprocess_dataset(data, processor, "vision", 0)
    for row in processed["train"]:
        expected = (60 if data["train"].features["label"].int2str(row["label"]) == "dark" else 180) / 255
        assert float(np.mean(np.asarray(row["pixel_values"]))) == pytest.approx(expected, abs=0.01)


# ----------------------------------------------------------------------------------------------- labels


def test_label_whitespace_is_stripped_and_case_twins_stop(tmp_path, offline):
    from hf_transfer.data import DataArguments, load_transfer_dataset
    from hf_transfer.errors import DataError

    padded = tmp_path / "padded.csv"
    padded.write_text("text,label\n" + "".join(f"t{i},{[' pos', 'pos', 'pos ', 'neg'][i % 4]}\n" for i in range(40)))
    data = load_transfer_dataset(DataArguments(train_file=str(padded)))
    assert data["train"].features["label"].names == ["neg", "pos"]
    twins = tmp_path / "twins.csv"
    twins.write_text("text,label\n" + "".join(f"t{i},{['Pos', 'pos', 'neg'][i % 3]}\n" for i in range(30)))
    with pytest.raises(DataError, match="Labels 'Pos' and 'pos' .* differ only in letter case"):
        load_transfer_dataset(DataArguments(train_file=str(twins)))


# ------------------------------------------------------------------------------------------------- maml


def test_maml_default_class_split_works_when_classes_are_few():
    """10 classes at 5-way used to give meta-train 0 classes; now 5 / 0 / 5 (validation on held-out rows)."""
    from hf_transfer.meta import default_class_split, split_classes

    assert default_class_split(10, 5) == (5, 0, 5)
    assert default_class_split(20, 5) == (10, 5, 5)
    assert default_class_split(5, 2) == (3, 0, 2)
    splits = split_classes([f"c{i}" for i in range(10)], 5, seed=0)
    assert len(splits.train) == 5 and len(splits.test) == 5 and not splits.validation


def test_the_interval_of_one_episode_is_undefined_not_zero(tmp_path):
    import math

    from hf_transfer.meta import mean_confidence_interval
    from hf_transfer.outputs import write_json_atomic

    mean, ci = mean_confidence_interval([0.6])
    assert mean == 0.6 and math.isnan(ci)
    path = write_json_atomic(tmp_path / "r.json", {"meta_test_ci95": ci, "nested": [float("inf"), 1.0]})
    assert json.loads(path.read_text()) == {"meta_test_ci95": None, "nested": [None, 1.0]}  # strict JSON


# ------------------------------------------------------------------------------ output folder and resume


SAVING_RUN = [
    "--dataset_name",
    "tweet_sentiment",
    "--max_train_samples",
    "32",
    "--max_eval_samples",
    "16",
    "--strategy",
    "full",
    "--per_device_train_batch_size",
    "8",
    "--save_strategy",
    "steps",
    "--save_steps",
    "2",
    "--logging_steps",
    "1",
    "--seed",
    "3",
]


def test_a_rerun_with_other_data_does_not_resume_another_runs_checkpoint(tiny_bert, tmp_path, offline):
    """It used to train 0 steps, save the old weights under the new labels and exit 0 with train_loss 0.0."""
    out = tmp_path / "out"
    assert_ok(
        run_recipe_in_process(
            "finetune.py", "--model_name_or_path", tiny_bert, *SAVING_RUN, "--max_steps", "4", output_dir=out
        )
    )
    other = [a if a != "tweet_sentiment" else "bbc_news" for a in SAVING_RUN]
    run = run_recipe_in_process(
        "finetune.py", "--model_name_or_path", tiny_bert, *other, "--max_steps", "4", output_dir=out
    )
    assert run.returncode == 2, run.output[-3000:]
    assert f"--output_dir {out} holds checkpoints of another run" in run.output
    assert "DataArguments.dataset_name: 'tweet_sentiment' -> 'bbc_news'" in run.output


# One built-in per task and the validation metric a resumed run must reproduce: multi-label thresholds are chosen
# again on the resumed model, and a regression head resumes standardised and is folded to raw units once, at the end.
RESUMED_TASKS = {
    "single_label": ("tweet_sentiment", "eval_accuracy"),
    "multi_label": ("twitter_entity_types", "eval_micro_f1"),
    "regression": ("drug_reviews_usefulness", "eval_rmse"),
    "token_classification": ("twitter_ner", "eval_f1"),
}


@pytest.mark.parametrize("task", list(RESUMED_TASKS))
def test_a_resumed_run_reports_the_whole_runs_numbers_and_a_finished_one_says_so(task, tiny_bert, tmp_path, offline):
    """Killed after step 4 of 6 (here: stopped by --max_steps) and resumed: train_loss is the mean over all 6
    steps and the validation metric that of the run that was never interrupted; rerunning the finished run trains
    nothing and says so."""
    dataset, metric = RESUMED_TASKS[task]
    run = [a if a != "tweet_sentiment" else dataset for a in SAVING_RUN]

    def finetune(max_steps: str, out):
        return run_recipe_in_process(
            "finetune.py", "--model_name_or_path", tiny_bert, *run, "--max_steps", max_steps, output_dir=out
        )

    straight = assert_ok(finetune("6", tmp_path / "straight")).results
    out = tmp_path / "resumed"
    first = assert_ok(finetune("4", out)).results
    assert (
        first["trained"] is True and first["task"] == task and "**Untrained:**" not in (out / "README.md").read_text()
    )
    resumed = assert_ok(finetune("6", out))
    assert "Resuming training from" in resumed.output and resumed.results["resumed_from_step"] == 4
    assert resumed.results["train_loss"] == pytest.approx(straight["train_loss"], rel=1e-3)
    assert resumed.results[metric] == pytest.approx(straight[metric], rel=1e-3, abs=1e-6), (resumed.results, straight)
    assert resumed.results["train_runtime"] > first["train_runtime"]
    if task == "multi_label":
        thresholds = json.loads((out / "decision_thresholds.json").read_text())
        assert thresholds == json.loads((tmp_path / "straight" / "decision_thresholds.json").read_text())
    again = assert_ok(finetune("6", out))
    assert "had already finished (step 6): nothing was trained now" in again.output
    assert not (out / "checkpoint-7").exists()  # transformers alone would train a 7th step past --max_steps 6
    assert again.results["train_loss"] == pytest.approx(straight["train_loss"], rel=1e-3)
    assert again.results[metric] == pytest.approx(resumed.results[metric], rel=1e-6, abs=1e-9)


def test_two_runs_into_one_output_dir_the_second_stops(tiny_bert, tmp_path, offline):
    import subprocess
    import sys

    from hf_transfer.recipe.run_guard import LOCK_FILE

    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
            "f.write('pid 4242\\n'); f.flush(); print('locked', flush=True); time.sleep(120)",
            str(out / LOCK_FILE),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        run = run_recipe_in_process("finetune.py", "--model_name_or_path", tiny_bert, *TINY_RUN, output_dir=out)
        assert run.returncode == 2, run.output[-3000:]
        assert f"--output_dir {out} is in use by another run (pid 4242)" in run.output
        assert not (out / "all_results.json").exists()
    finally:
        holder.kill()
        holder.wait()
    assert_ok(run_recipe_in_process("finetune.py", "--model_name_or_path", tiny_bert, *TINY_RUN, output_dir=out))


def test_staging_leftovers_of_a_killed_run_are_removed(tiny_bert, tmp_path, offline):
    out = tmp_path / "out"
    (out / ".staging-abc123").mkdir(parents=True)
    (out / ".staging-abc123" / "model.safetensors").write_bytes(b"half")
    assert_ok(run_recipe_in_process("finetune.py", "--model_name_or_path", tiny_bert, *TINY_RUN, output_dir=out))
    assert not list(out.glob(".staging-*"))


def test_results_files_are_as_readable_as_the_users_other_files(tmp_path):
    """mkstemp made them 0600: a shared results folder could not be read by the rest of the team."""
    import os
    import stat

    from hf_transfer.outputs import write_json_atomic

    old = os.umask(0o022)
    try:
        path = write_json_atomic(tmp_path / "all_results.json", {"eval_accuracy": 0.5})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


# -------------------------------------------------------------------------------------------------- hub


@pytest.fixture
def silent_hub(hub_online, monkeypatch):
    """A server that accepts connections and never answers (it used to hang a push forever)."""
    import socket
    import threading

    from huggingface_hub import constants

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []

    def accept():
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    yield url
    server.close()
    for conn in accepted:
        conn.close()


def test_a_push_to_a_server_that_never_answers_ends_with_the_fix(probe_output_dir, silent_hub):
    import time

    from hf_transfer.hub import HubPushError, push_output_dir

    start = time.monotonic()
    with pytest.raises(HubPushError, match="did not answer in time") as err:
        push_output_dir(probe_output_dir, "test-user/silent", request_timeout=1, max_retries=2)
    assert time.monotonic() - start < 30
    assert f"python -m hf_transfer push {probe_output_dir}" in str(err.value)
    start = time.monotonic()
    with pytest.raises(HubPushError, match="did not finish within 2 s"):  # the overall deadline
        push_output_dir(probe_output_dir, "test-user/silent", request_timeout=600, deadline=2, max_retries=1)
    assert time.monotonic() - start < 30
    assert (probe_output_dir / "model.safetensors").is_file()


@pytest.fixture(scope="module")
def probe_output_dir(tiny_bert, tmp_path_factory):
    out = tmp_path_factory.mktemp("probe") / "out"
    assert_ok(
        run_recipe_in_process(
            "finetune.py",
            "--model_name_or_path",
            tiny_bert,
            *TINY_RUN[:6],
            "--strategy",
            "linear_probe",
            output_dir=out,
        )
    )
    return out


def test_push_to_hub_problems_stop_before_training(tiny_bert, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    offline = run_recipe_in_process(
        "finetune.py",
        "--model_name_or_path",
        tiny_bert,
        *TINY_RUN,
        "--push_to_hub",
        "true",
        "--hub_model_id",
        "test-user/x",
        output_dir=tmp_path / "offline",
    )
    assert offline.returncode == 2 and "--push_to_hub with HF_HUB_OFFLINE=1" in offline.output
    assert "Running training" not in offline.output and not (tmp_path / "offline" / "all_results.json").exists()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    bad = run_recipe_in_process(
        "finetune.py",
        "--model_name_or_path",
        tiny_bert,
        *TINY_RUN,
        "--push_to_hub",
        "true",
        "--hub_model_id",
        "not a/valid//id",
        output_dir=tmp_path / "bad",
    )
    assert bad.returncode == 2 and "--hub_model_id 'not a/valid//id' is not a valid Hub repository id" in bad.output
    assert not (tmp_path / "bad" / "all_results.json").exists()


def test_the_push_command_names_its_own_flags(probe_output_dir, hub_server):
    import subprocess
    import sys

    from recipe_runner import ROOT

    push = subprocess.run(
        [
            sys.executable,
            "-m",
            "hf_transfer",
            "push",
            str(probe_output_dir),
            "--repo_id",
            "test-user/flags",
            "--token",
            "hf_wrong",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert push.returncode == 2, push.stderr
    assert "pass a valid --token" in push.stderr and "--hub_token" not in push.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "hf_transfer", "push", str(probe_output_dir), "--repo_id", "a b"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert bad.returncode == 2 and "--repo_id 'a b' is not a valid Hub repository id" in bad.stderr
    assert "Traceback" not in bad.stderr


# ------------------------------------------------------------------------------------- data and model files


def test_bad_files_are_one_clear_line_in_every_recipe(tiny_bert, tmp_path, offline):
    """The contrastive recipe had its own file reader without finetune's checks (tracebacks); a non-UTF-8 csv hid
    its cause; a one-class image folder read as a missing label column; a truncated weights file or a peft adapter
    as the model ended in a traceback."""
    import shutil

    from PIL import Image

    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(b"text,label\ncaf\xe9 bon,pos\nmauvais,neg\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    header = tmp_path / "header.csv"
    header.write_text("text,label\n")
    good = tmp_path / "good.csv"
    good.write_text("text,label\n" + "".join(f"text {i},{'pos' if i % 2 else 'neg'}\n" for i in range(40)))
    (tmp_path / "one-class" / "cat").mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (8, 8)).save(tmp_path / "one-class" / "cat" / f"{i}.png")
    truncated = tmp_path / "truncated"
    shutil.copytree(tiny_bert, truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "minilm", "peft_type": "LORA"}))

    not_utf8 = f"--train_file '{latin1}' is not UTF-8 text (byte b'\\xe9' on line 2"
    cases = [
        ("finetune.py", ["--train_file", str(latin1)], not_utf8),
        ("contrastive_pretrain.py", ["--train_file", str(latin1)], not_utf8),
        ("contrastive_pretrain.py", ["--train_file", str(empty)], f"--train_file '{empty}' is empty"),
        ("contrastive_pretrain.py", ["--train_file", str(header)], f"--train_file '{header}' has no data rows"),
        (
            "finetune.py",
            ["--train_dir", str(tmp_path / "one-class")],
            "has one class folder (cat); a classifier needs at least 2",
        ),
        (
            "finetune.py",
            ["--train_file", str(good), "--model_name_or_path", str(truncated)],
            "model.safetensors is truncated or corrupt",
        ),
        (
            "finetune.py",
            ["--train_file", str(good), "--model_name_or_path", str(adapter)],
            "is a peft adapter, not a model: pass its base model ('minilm')",
        ),
    ]
    for index, (recipe, args, message) in enumerate(cases):
        model = [] if "--model_name_or_path" in args else ["--model_name_or_path", tiny_bert]
        run = run_recipe_in_process(recipe, *model, *args, "--max_steps", "1", output_dir=tmp_path / f"out{index}")
        assert run.returncode == 2, f"{recipe} {args}: {run.output[-3000:]}"
        assert message in run.output, f"{recipe} {args}: {run.output[-3000:]}"


def test_domain_adapt_with_few_held_out_rows_skips_the_a_distance(tiny_bert, tmp_path, offline):
    """It crashed after loading: the proxy A-distance needs 8 held-out rows per domain."""
    run = assert_ok(
        run_recipe_in_process(
            "domain_adapt.py",
            "--model_name_or_path",
            tiny_bert,
            "--source_dataset_name",
            "tweet_sentiment",
            "--source_max_train_samples",
            "24",
            "--source_max_eval_samples",
            "3",
            "--target_dataset_name",
            "drug_reviews",
            "--target_max_train_samples",
            "24",
            "--target_max_eval_samples",
            "3",
            "--method",
            "coral",
            "--strategy",
            "full",
            "--max_seq_length",
            "16",
            "--max_steps",
            "1",
            "--save_strategy",
            "no",
            output_dir=tmp_path / "out",
        )
    )
    assert "Skipping the proxy A-distance: it needs 8 held-out rows per domain" in run.output
    assert "a_distance_before" not in run.results and "target_eval_accuracy" in run.results


# ------------------------------------------------------------------------------------ accelerate launch


def _csv_with_missing_targets(tmp_path):
    """A regression csv whose rows 3 and 7 have no target."""
    path = tmp_path / "missing.csv"
    path.write_text("text,score\n" + "".join(f"t{i},{'' if i in (3, 7) else i / 2}\n" for i in range(20)))
    return path


def _bad_inputs_of_every_task(tmp_path) -> dict[str, tuple[list[str], str]]:
    """Flags and the line that must end the run: a bad argument, and bad data of two tasks (found after the
    processes have started, where each of them reads the files)."""
    ragged = tmp_path / "ragged.jsonl"
    ragged.write_text("".join(json.dumps({"tokens": ["a", "b"], "tags": ["O"]}) + "\n" for _ in range(10)))
    missing = _csv_with_missing_targets(tmp_path)
    return {
        "misspelled flag": (["--lerning_rate", "1e-3"], "error: Unknown argument --lerning_rate"),
        "ragged tags": (
            ["--train_file", str(ragged)],
            f"error: Split 'train' of --train_file '{ragged}' has 10 rows whose tag count differs",
        ),
        "missing targets": (
            ["--train_file", str(missing), "--label_column", "score", "--task", "regression"],
            "error: Split 'train' has 2 rows with no target",
        ),
    }


# Under 2 processes, bad data of two tasks: it is found after both workers started (a misspelled flag stops each of
# them the same way, as one process does); the other tasks' bad data takes the same path (`DataError`).
@pytest.mark.slow  # the second stage (make test-slow)
@pytest.mark.parametrize("num_processes, case", [(1, "misspelled flag"), (2, "ragged tags"), (2, "missing targets")])
def test_under_accelerate_launch_a_bad_input_is_one_line(num_processes, case, tmp_path):
    """The README's way to run: the user sees the one line once, whatever the process count. accelerate's launcher
    itself exits 1 on any failure of its child (with --quiet it adds no traceback of its own); the recipe's own
    process group exits 2, where torch's launcher used to print a ChildFailedError traceback and exit 1."""
    import sys
    from pathlib import Path

    launcher = [
        str(Path(sys.executable).parent / "accelerate"),
        "launch",
        "--quiet",
        "--num_processes",
        str(num_processes),
        "--cpu",
    ]
    flags, line = _bad_inputs_of_every_task(tmp_path)[case]
    run = run_recipe("finetune.py", *flags, output_dir=tmp_path / "out", launcher=launcher)
    assert run.returncode != 0
    last = run.output.strip().splitlines()[-1]
    assert last.startswith(line) and run.output.count(last) == 1, run.output[-3000:]
    assert "Traceback" not in run.output and "ChildFailedError" not in run.output, run.output[-3000:]


def test_a_process_accelerate_pinned_to_one_thread_gets_the_cores_unless_the_user_chose(tmp_path, monkeypatch):
    """`accelerate launch recipes/finetune.py` (no --cpu) exports OMP_NUM_THREADS=1; unless the user set it or
    --num_cpu_threads_per_process, the recipe uses the cores (divided among the processes on the machine)."""
    import os
    import sys
    from pathlib import Path

    import hf_transfer.cpu_processes as cpu_processes

    cores = len(os.sched_getaffinity(0))
    missing = _csv_with_missing_targets(tmp_path)
    launcher = [str(Path(sys.executable).parent / "accelerate"), "launch", "--quiet"]
    flags = ["--train_file", str(missing), "--label_column", "score", "--task", "regression"]
    run = run_recipe(
        "finetune.py", *flags, output_dir=tmp_path / "out", launcher=launcher, env={"OMP_NUM_THREADS": None}
    )
    assert run.returncode != 0 and f"n_processes: 1, torch threads: {cores}," in run.output, run.output[-3000:]

    launched = ["accelerate", "launch", "recipes/finetune.py"]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(8)))
    monkeypatch.setattr(cpu_processes, "_launcher_command_line", lambda: launched)
    monkeypatch.setattr(cpu_processes, "_launcher_environment", lambda: {})
    assert cpu_processes.cpu_threads_to_use() == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert cpu_processes.cpu_threads_to_use() == 4
    monkeypatch.setattr(cpu_processes, "_launcher_environment", lambda: {"OMP_NUM_THREADS": "1"})  # the user's
    assert cpu_processes.cpu_threads_to_use() is None
    monkeypatch.setattr(cpu_processes, "_launcher_environment", lambda: {})
    monkeypatch.setattr(
        cpu_processes, "_launcher_command_line", lambda: launched[:2] + ["--num_cpu_threads_per_process", "1"]
    )
    assert cpu_processes.cpu_threads_to_use() is None
    monkeypatch.setattr(cpu_processes, "_launcher_command_line", lambda: [])  # plain python: torch's own default
    assert cpu_processes.cpu_threads_to_use() is None


def test_the_process_that_starts_the_cpu_workers_imports_no_ml_stack():
    """It only starts the workers and waits: each of them imports torch and transformers itself."""
    import subprocess
    import sys

    code = "import sys, hf_transfer.cpu_processes; print(sorted({'torch', 'transformers', 'numpy'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"


# ---------------------------------------------------------------------------------- failures after training


def test_a_full_disk_after_training_says_where_the_model_is(tiny_bert, tmp_path, offline, monkeypatch):
    """Disk full while writing the results: one line naming the cause, the fix, and the saved model."""
    import errno

    import hf_transfer.recipe.start as recipe_start

    original = recipe_start.write_json_atomic

    def full_disk(path, obj):
        if str(path).endswith("all_results.json"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return original(path, obj)

    monkeypatch.setattr(recipe_start, "write_json_atomic", full_disk)  # where the recipes write all_results.json
    out = tmp_path / "out"
    run = run_recipe_in_process("finetune.py", "--model_name_or_path", tiny_bert, *TINY_RUN, output_dir=out)
    assert run.returncode == 1, run.output[-3000:]
    line = next(line for line in run.output.splitlines() if line.startswith("error:"))
    assert f"No space left on device while writing {out / 'all_results.json'}: free space" in line
    assert f"the model this run trained is saved in {out}" in line
    assert (out / "model.safetensors").is_file()


def _bad_detection_folder(tmp_path) -> tuple[list[str], str]:
    """A COCO folder whose second image has a box of negative width, and the line that must end the run."""
    from PIL import Image

    folder = tmp_path / "boxes"
    folder.mkdir()
    for index in range(2):
        Image.new("RGB", (64, 64), (index * 40, 0, 0)).save(folder / f"{index}.png")
    coco = {
        "images": [{"id": i, "file_name": f"{i}.png", "width": 64, "height": 64} for i in range(2)],
        "annotations": [
            {"id": 0, "image_id": 0, "bbox": [1, 2, 10, 12], "category_id": 1},
            {"id": 1, "image_id": 1, "bbox": [10, 10, -4, 5], "category_id": 1},
        ],
        "categories": [{"id": 1, "name": "cat"}],
    }
    (folder / "annotations.json").write_text(json.dumps(coco))
    return ["--backbone", "efficientnet-lite0", "--train_dir", str(folder)], "zero or negative width / height"


# Every recipe, launched the README's way: a misspelled flag (every recipe parses its flags in each process), and
# detection's bad box under 2 processes (found after both started, where each reads the folder).
@pytest.mark.slow  # the second stage (make test-slow)
@pytest.mark.parametrize("recipe", [*(r for r in RECIPES if r != "finetune.py"), "detect.py bad box"])
def test_every_recipe_under_accelerate_launch_says_a_bad_input_in_one_line(recipe, tmp_path):
    import sys
    from pathlib import Path

    script, _, case = recipe.partition(" ")
    flags, line = (
        (["--max_stepz", "3"], "Unknown argument --max_stepz") if not case else _bad_detection_folder(tmp_path)
    )
    launcher = [str(Path(sys.executable).parent / "accelerate"), "launch", "--quiet", "--cpu"]
    launcher += ["--num_processes", "2" if case else "1"]
    run = run_recipe(script, *flags, output_dir=tmp_path / "out", launcher=launcher)
    assert run.returncode != 0
    errors = [row for row in run.output.strip().splitlines() if row.startswith("error:")]
    assert len(errors) == 1 and line in errors[0], run.output[-3000:]
    assert "Traceback" not in run.output and "ChildFailedError" not in run.output, run.output[-3000:]
