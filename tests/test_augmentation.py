"""Training the way timm trains: image augmentation around each model's own processor, Mixup / CutMix with soft
targets, weight EMA (evaluated, saved, resumed), and the settings that do not fit a run stopped with one line."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, TrainingArguments

from hf_transfer.augmentation import (
    AugmentationArguments,
    ModelEmaCallback,
    create_batch_mixer,
    create_image_augmentation,
)
from hf_transfer.augmentation.ema import EMA_STATE_FILE
from hf_transfer.augmentation.transforms import processor_input_size
from hf_transfer.errors import ConfigError
from hf_transfer.finetuning import TransferTrainer
from hf_transfer.recipe.arguments import given_argument_names
from recipe_runner import assert_ok, run_recipe_in_process
from reload_check import ReloadChecker

VISION_RUN = [
    "--dataset_name",
    "digits",
    "--max_train_samples",
    "64",
    "--max_eval_samples",
    "40",
    "--num_train_epochs",
    "2",
    "--per_device_train_batch_size",
    "16",
    "--learning_rate",
    "5e-3",
    "--report_to",
    "none",
]


# ------------------------------------------------------------------------------------------ settings


def test_auto_trains_on_the_evaluation_transform_and_presets_are_asked_for():
    """`auto` is `none`: `basic` lost to no augmentation in every measured cell (benchmarks/RESULTS.md)."""
    args = AugmentationArguments()
    for strategy, task in (("full", "single_label"), ("lora", "multi_label"), ("lp_ft", "regression")):
        assert args.resolve_augmentation(strategy, task, "vision") == "none"
    chosen = AugmentationArguments(augmentation="randaugment")
    assert chosen.resolve_augmentation("full", "multi_label", "vision") == "randaugment"
    assert chosen.resolve_augmentation("linear_probe", "single_label", "vision") == "none"  # cached features
    assert chosen.resolve_augmentation("full", "single_label", "text") == "none"
    assert chosen.policy("randaugment") == "rand-m9-mstd0.5-inc1" and chosen.erasing_probability("randaugment") == 0.25
    assert AugmentationArguments().erasing_probability("basic") == 0.0
    # A policy asked for by itself is not dropped: it comes with basic's crop and flip.
    assert AugmentationArguments(auto_augment="original").resolve_augmentation("full", "single_label") == "basic"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"augmentation": "heavy"}, "--augmentation 'heavy' is not one of auto, none, basic"),
        ({"crop_scale": [0.5]}, "--crop_scale [0.5] must be two positive numbers"),
        ({"crop_scale": [0.5, 2.0]}, "at most 1"),
        ({"hflip": 1.5}, "--hflip 1.5 is a probability"),
        ({"random_erasing": -0.1}, "--random_erasing -0.1 is a probability"),
        ({"mixup": -1.0}, "--mixup -1.0 must be 0 (off) or positive"),
        ({"model_ema_decay": 1.0}, "--model_ema_decay 1.0 must be in (0, 1)"),
    ],
)
def test_bad_augmentation_values_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError) as err:
        AugmentationArguments(**kwargs)
    assert message in str(err.value)


def test_image_workers_only_where_the_cores_are_free(monkeypatch):
    from hf_transfer.cpu_processes import image_dataloader_workers

    assert image_dataloader_workers(on_gpu=False) == 0  # the CPU step uses every core (measured: workers cost 25%)
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: set(range(16)))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert image_dataloader_workers(on_gpu=True) == 4  # 8 cores per process: at most timm's 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert image_dataloader_workers(on_gpu=True) == 1


def test_given_argument_names_come_from_flags_and_the_config_file(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("learning_rate: 0.1\nstrategy: full\n")
    names = given_argument_names([str(config), "--dataloader_num_workers", "0", "--model-ema=true"])
    assert names == {"learning_rate", "strategy", "dataloader_num_workers", "model_ema"}
    assert given_argument_names([], default_config=str(config)) == {"learning_rate", "strategy"}


# ------------------------------------------------------------------------------- the training transform


@pytest.mark.parametrize("architecture", ["vit", "convnext", "clip", "timm"])
def test_the_training_transform_ends_in_the_model_s_own_processor(architecture, tiny):
    """Every processor declares its input differently (size, shortest_edge + crop_pct, a timm pretrained_cfg):
    the augmented batch has the evaluation batch's shape, and an augmentation set to change nothing reproduces the
    evaluation transform exactly, normalisation included."""
    processor = AutoImageProcessor.from_pretrained(tiny(architecture))
    height, width = processor_input_size(processor)
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    evaluated = processor(image, return_tensors="pt")["pixel_values"]

    identity = AugmentationArguments(
        augmentation="basic", crop_scale=[1.0, 1.0], crop_ratio=[width / height] * 2, hflip=0.0, color_jitter=0.0
    )
    augmentation = create_image_augmentation(identity, "basic", processor)
    same = processor(augmentation.augment_image(image), return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(augmentation.augment_pixels(same), evaluated)

    policy = AugmentationArguments(augmentation="trivialaugment", random_erasing=1.0)
    augmentation = create_image_augmentation(policy, "trivialaugment", processor)
    torch.manual_seed(0)
    changed = [
        augmentation.augment_pixels(processor(augmentation.augment_image(image), return_tensors="pt")["pixel_values"])
        for _ in range(3)
    ]
    assert all(c.shape == evaluated.shape for c in changed)
    assert all(not torch.allclose(c, evaluated) for c in changed)
    assert "trivialaugment" in augmentation.description and "random erasing 1" in augmentation.description
    assert create_image_augmentation(AugmentationArguments(), "none", processor) is None


def test_randaugment_at_its_top_magnitude_runs_under_this_pillow(tiny):
    """timm's RandAugment posterizes to 0 bits at level 10, which Pillow 13 rejects: training stopped at a random
    step (about 1 in 40 batches at `rand-m9-mstd0.5-inc1`, the randaugment preset)."""
    from timm.data.auto_augment import AugmentOp

    processor = AutoImageProcessor.from_pretrained(tiny("vit"))
    augmentation = create_image_augmentation(
        AugmentationArguments(augmentation="randaugment"), "randaugment", processor
    )
    image = Image.fromarray(np.full((32, 32, 3), 200, dtype=np.uint8))
    black = AugmentOp("PosterizeIncreasing", prob=1.0, magnitude=10)(image)
    assert np.asarray(black).max() == 0  # all bits dropped, as timm means it
    strongest = create_image_augmentation(
        AugmentationArguments(auto_augment="rand-m10-n3-mstd0-inc1"), "basic", processor
    )
    for _ in range(200):
        strongest.augment_image(image)
    assert augmentation.augment_image(image).size == (32, 32)


# ------------------------------------------------------------------------------------------ Mixup / CutMix


@pytest.mark.parametrize("mode", ["mixup", "cutmix"])
def test_mixed_targets_match_the_mixed_images(mode):
    torch.manual_seed(0)
    np.random.seed(0)
    args = AugmentationArguments(**{mode: 1.0})
    mixer = create_batch_mixer(args, num_labels=4, task="single_label")
    images = torch.stack([torch.full((3, 8, 8), float(i)) for i in range(5)])  # an odd batch: 5 rows
    labels = torch.tensor([0, 1, 2, 3, 1])
    mixed, targets = mixer(images.clone(), labels)
    assert targets.shape == (5, 4) and torch.allclose(targets.sum(-1), torch.ones(5))
    torch.testing.assert_close(mixed[4], images[4])  # the odd row out keeps its image and its one-hot target
    torch.testing.assert_close(targets[4], torch.nn.functional.one_hot(labels[4], 4).float())
    for i in range(4):  # row i is mixed with row 3 - i (timm mixes a batch with its reverse)
        share = float(targets[i, labels[i]]) if labels[i] != labels[3 - i] else 1.0
        if labels[i] != labels[3 - i]:
            # the pixel mass of row i that comes from itself is what its target gives its own class
            own = (mixed[i] - images[3 - i]) / (images[i] - images[3 - i])
            assert float(own.mean()) == pytest.approx(share, abs=1e-5)


def test_label_smoothing_reaches_the_mixed_targets_and_multi_label_rows_mix():
    args = AugmentationArguments(mixup=1.0, mixup_prob=0.0)  # never mixes: only the smoothing shows
    mixer = create_batch_mixer(args, num_labels=4, task="single_label", label_smoothing=0.2)
    _, targets = mixer(torch.zeros(2, 3, 4, 4), torch.tensor([0, 3]))
    torch.testing.assert_close(targets, torch.tensor([[0.85, 0.05, 0.05, 0.05], [0.05, 0.05, 0.05, 0.85]]))
    multi = create_batch_mixer(AugmentationArguments(mixup=1.0), num_labels=3, task="multi_label")
    rows = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    _, mixed = multi(torch.zeros(2, 3, 4, 4), rows)
    assert mixed.shape == (2, 3) and torch.allclose(mixed[0] + mixed[1], torch.ones(3))  # lam*a + (1-lam)*b, swapped
    assert create_batch_mixer(AugmentationArguments(), num_labels=3, task="single_label") is None


def test_soft_target_loss_without_mixing_is_the_model_s_cross_entropy(tiny, tmp_path):
    """With mixing switched off the soft targets are one-hot: the trainer's soft-target cross-entropy must then be
    exactly the loss the model computes itself."""
    from transformers import AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(tiny("vit"), num_labels=3)
    model.train()
    pixel_values = torch.randn(4, 3, 32, 32)
    labels = torch.tensor([0, 2, 1, 2])
    mixer = create_batch_mixer(AugmentationArguments(mixup=1.0, mixup_prob=0.0), num_labels=3, task="single_label")
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    trainer = TransferTrainer(model=model, args=args, batch_mixer=mixer)
    torch.manual_seed(0)
    ours = trainer.compute_loss(model, {"pixel_values": pixel_values.clone(), "labels": labels})
    torch.manual_seed(0)
    stock = model(pixel_values=pixel_values, labels=labels).loss
    assert float(ours) == pytest.approx(float(stock), rel=1e-5)
    assert trainer.loss_is_scaled_for_ga is False


# -------------------------------------------------------------------------------------------- weight EMA


def _ema_run(model_dir, out, max_steps, resume=None):
    from transformers import AutoModelForImageClassification

    torch.manual_seed(0)
    model = AutoModelForImageClassification.from_pretrained(model_dir, num_labels=3, hidden_dropout_prob=0.0)
    generator = torch.Generator().manual_seed(1)
    rows = [
        {"pixel_values": torch.randn(3, 32, 32, generator=generator), "labels": torch.tensor(i % 3)} for i in range(16)
    ]
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=4,
        max_steps=max_steps,
        learning_rate=1e-2,
        save_strategy="steps",
        save_steps=1,
        report_to="none",
        use_cpu=True,
        seed=3,
    )
    callback = ModelEmaCallback(decay=0.9, warmup=True, resume_from=resume)
    trainer = TransferTrainer(model=model, args=args, train_dataset=rows, callbacks=[callback])
    trainer.train(resume_from_checkpoint=resume)
    return model, callback


def _saved(out, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The live classifier weight and its average in checkpoint `step`."""
    from safetensors.torch import load_file

    checkpoint = out / f"checkpoint-{step}"
    live = load_file(checkpoint / "model.safetensors")["classifier.weight"]
    return live, torch.load(checkpoint / EMA_STATE_FILE, weights_only=True)["classifier.weight"]


def test_weight_ema_is_what_training_ends_with_and_resumes_where_it_stopped(tiny, tmp_path):
    out = tmp_path / "run"
    model, callback = _ema_run(tiny("vit"), out, max_steps=4)
    live, average = _saved(out, 4)
    torch.testing.assert_close(model.classifier.weight.detach(), average)  # the model ends holding the average
    assert not torch.allclose(live, average)  # which is not the live weights

    # Stopped after step 2 and resumed there: steps 3 and 4 move the average saved at step 2 towards the live
    # weights by 1 - decay(step) (timm's warmup: 1 - (1 + step - 1) ** -2/3, at most 0.9), not a fresh average.
    import shutil

    for step in (3, 4):
        shutil.rmtree(out / f"checkpoint-{step}")
    _ema_run(tiny("vit"), out, 4, resume=str(out / "checkpoint-2"))
    _, previous = _saved(out, 2)
    for step in (3, 4):
        live, average = _saved(out, step)
        decay = min(1 - (1 + step - 1) ** (-2 / 3), 0.9)
        torch.testing.assert_close(average, previous.lerp(live, 1 - decay))
        previous = average


# ------------------------------------------------------------------------------------------ through the recipe


@pytest.mark.parametrize(
    "architecture, flags",
    [
        ("vit", ["--strategy", "full", "--augmentation", "randaugment", "--mixup", "0.8", "--cutmix", "1.0"]),
        ("convnext", ["--strategy", "lora", "--merge_lora", "true", "--augmentation", "trivialaugment"]),
    ],
)
def test_augmented_ema_runs_reload_to_their_reported_accuracy(architecture, flags, tiny, tmp_path, one_torch_thread):
    """Trained on augmented, mixed, smoothed batches with a weight EMA; evaluated on the evaluation transform: the
    saved model (the average) reloads in plain transformers / peft / pipeline to the accuracy the run reported."""
    out = tmp_path / "out"
    run = assert_ok(
        run_recipe_in_process(
            "finetune.py",
            "--model_name_or_path",
            tiny(architecture),
            *VISION_RUN,
            *flags,
            "--label_smoothing_factor",
            "0.1",
            "--model_ema",
            "true",
            "--model_ema_decay",
            "0.9",
            "--save_strategy",
            "no",
            output_dir=out,
        )
    )
    assert run.results["augmentation"].startswith(flags[flags.index("--augmentation") + 1])
    assert "the model now holds the weight EMA" in run.output
    assert torch.load(out / "training_args.bin", weights_only=False).dataloader_num_workers == 0  # CPU: see below
    strategy = flags[1]
    checker = ReloadChecker()
    try:
        (reloaded,) = checker(
            [
                {
                    "output_dir": str(out),
                    "base_model": tiny(architecture),
                    "strategy": strategy,
                    "modality": "vision",
                    "data": {"dataset_name": "digits", "max_train_samples": 64, "max_eval_samples": 40},
                }
            ]
        )
    finally:
        checker.close()
    assert "error" not in reloaded, reloaded.get("traceback")
    for way in ("model", "pipeline", *(["peft"] if strategy == "lora" else [])):
        assert reloaded[way]["accuracy"] == pytest.approx(run.results["eval_accuracy"], abs=1e-6), way
    card = (out / "README.md").read_text()
    assert '"model_ema": true' in card and flags[flags.index("--augmentation") + 1] in card


@pytest.mark.parametrize(
    "model, data, flags, message",
    [
        ("bert", "tweet_sentiment", ["--mixup", "0.8"], "transform images; this is a text model"),
        (
            "vit",
            "digits",
            ["--strategy", "linear_probe", "--augmentation", "basic"],
            "fits its head on cached features",
        ),
        ("vit", "digits", ["--strategy", "linear_probe", "--model_ema", "true"], "fits its head on cached features"),
        ("vit", "fashion_mnist_mosaic_counts", ["--cutmix", "1.0"], "a regression task has no classes"),
        (
            "vit",
            "fashion_mnist_mosaics",
            ["--label_smoothing_factor", "0.1"],
            "--label_smoothing_factor smooths one class per example; a multi_label task",
        ),
        ("vit", "digits", ["--model_ema", "true", "--load_best_model_at_end", "true"], "choose one"),
    ],
)
def test_settings_that_do_not_fit_the_run_are_one_line(model, data, flags, message, tiny, tmp_path):
    run = run_recipe_in_process(
        "finetune.py",
        "--model_name_or_path",
        tiny(model),
        "--dataset_name",
        data,
        "--max_train_samples",
        "20",
        "--max_eval_samples",
        "10",
        "--strategy",
        "full",
        "--eval_strategy",
        "epoch",
        "--save_strategy",
        "epoch",
        *flags,
        output_dir=tmp_path / "out",
    )
    assert run.returncode == 2, run.output[-2000:]
    assert message in run.output, run.output[-2000:]
    assert "Traceback" not in run.output
    assert not (tmp_path / "out" / "all_results.json").exists()


def test_weight_ema_is_refused_under_fsdp(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr("hf_transfer.recipe.checks._has_accelerator", lambda args: True)  # as on a GPU machine
    run = run_recipe_in_process(
        "finetune.py",
        "--model_name_or_path",
        tiny("vit"),
        *VISION_RUN,
        "--strategy",
        "full",
        "--model_ema",
        "true",
        "--fsdp",
        "full_shard",
        output_dir=tmp_path / "out",
    )
    assert run.returncode == 2, run.output[-2000:]
    assert "--model_ema does not run under FSDP" in run.output and "Traceback" not in run.output
