"""recipes/align.py and hf_transfer.alignment: any image tower with any text tower, saved as a stock
VisionTextDualEncoderModel that reloads in a fresh process and reproduces its zero-shot scores in transformers'
pipeline."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from hf_transfer.alignment import AlignmentArguments, caption_for, class_prompts
from hf_transfer.errors import ConfigError
from recipe_runner import OFFLINE_ENV, ROOT, assert_ok, run_recipe, write_csv

DATA = {"dataset_name": "fashion_mnist", "max_train_samples": 96, "max_eval_samples": 40}
TRAIN = [
    "--num_train_epochs",
    "2",
    "--per_device_train_batch_size",
    "16",
    "--learning_rate",
    "1e-3",
    "--save_strategy",
    "no",
    "--projection_dim",
    "16",
]


def _data_flags(data: dict) -> list[str]:
    return [part for key, value in data.items() for part in (f"--{key}", str(value))]


def _reload_in_fresh_process(output_dir, data: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "reload_align.py"), str(output_dir), json.dumps(data)],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, **OFFLINE_ENV},
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- captions and arguments ------------------------------------------------------------------------------------


def test_captions_from_class_names_single_and_multi_label():
    names = ["T-shirt/top", "ankle_boot", "Bag"]
    assert caption_for(1, names, "a photo of a {}.") == "a photo of a ankle boot."
    assert caption_for([0, 2], names, "{}") == "T-shirt/top and Bag"
    assert class_prompts(names, "this is {}") == ["this is T-shirt/top", "this is ankle boot", "this is Bag"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"caption_template": "a photo"}, "exactly one"),
        ({"caption_template": "{name} and {}"}, "exactly one"),
        ({"vision_tuning": "half"}, "--vision_tuning 'half' is not one of frozen, lora, full"),
        ({"held_out_classes": ["Bag"], "num_held_out_classes": 2}, "not both"),
        ({"num_held_out_classes": 0}, "positive"),
        ({"temperature": 0.0}, "--temperature"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        AlignmentArguments(**kwargs)


# ---- the dual encoder ------------------------------------------------------------------------------------------


def test_timm_processor_becomes_the_equivalent_stock_processor(tiny):
    """The CLIPImageProcessor written for a timm tower gives the pixels timm's own eval transform gives."""
    from transformers import TimmWrapperImageProcessor

    from hf_transfer.alignment.model import stock_image_processor

    cfg = {
        "input_size": [3, 56, 56],
        "crop_pct": 0.875,
        "interpolation": "bicubic",
        "mean": [0.5] * 3,
        "std": [0.25] * 3,
    }
    timm_processor = TimmWrapperImageProcessor(pretrained_cfg=cfg, architecture="x")
    stock = stock_image_processor(timm_processor)
    image = Image.fromarray((np.random.default_rng(0).random((80, 100, 3)) * 255).astype("uint8"))
    ours = stock(image, return_tensors="pt")["pixel_values"]
    theirs = timm_processor(image, return_tensors="pt")["pixel_values"]
    assert ours.shape == theirs.shape == (1, 3, 56, 56)
    assert torch.allclose(ours, theirs, atol=0.05), (ours - theirs).abs().max()


def test_dual_encoder_keeps_the_pretrained_towers(tiny):
    """Joining the towers re-initialises nothing of theirs; the timm tower's width becomes `hidden_size`."""
    from transformers import AutoModel

    from hf_transfer.alignment.model import create_dual_encoder

    args = AlignmentArguments(vision_model_name_or_path=tiny("timm"), text_model_name_or_path=tiny("roberta"))
    model, processor = create_dual_encoder(args)
    original = AutoModel.from_pretrained(tiny("timm")).eval()
    pixels = processor.image_processor(Image.new("RGB", (32, 32), "white"), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        assert torch.allclose(
            model.eval().vision_model(pixel_values=pixels).pooler_output, original(pixels).pooler_output
        )
    assert model.config.vision_config.hidden_size == original(pixels).pooler_output.shape[-1]
    text = AutoModel.from_pretrained(tiny("roberta"))
    for name, value in text.state_dict().items():
        assert torch.equal(model.text_model.state_dict()[name], value), name


# ---- the recipe: save, reload in a fresh process, pipeline -------------------------------------------------------


@pytest.mark.parametrize(
    "vision, text, tuning",
    [
        ("vit", "bert", "frozen"),
        pytest.param("timm", "roberta", "lora", marks=pytest.mark.slow),
        pytest.param("vit", "roberta", "full", marks=pytest.mark.slow),
    ],
)
def test_aligned_model_reloads_and_pipeline_reproduces_zero_shot_scores(tiny, tmp_path, vision, text, tuning):
    out = tmp_path / "aligned"
    run = assert_ok(
        run_recipe(
            "align.py",
            "--vision_model_name_or_path",
            tiny(vision),
            "--text_model_name_or_path",
            tiny(text),
            *_data_flags(DATA),
            "--held_out_classes",
            "Sandal",
            "Bag",
            "--vision_tuning",
            tuning,
            *TRAIN,
            output_dir=out,
        )
    )
    results = run.results
    assert results["trained"] and results["held_out_classes"] == ["Sandal", "Bag"]
    assert results["zero_shot_heldout_test_chance"] == 0.5 and results["zero_shot_all_test_chance"] == 0.1
    assert results["zero_shot_heldout_test_samples"] > 0
    saved = load_file(out / "model.safetensors")
    assert not any("lora" in key or key.startswith("loss") for key in saved)  # a plain dual encoder
    if tuning == "frozen":  # LiT: the saved image tower is the pretrained one
        original = load_file(f"{tiny(vision)}/model.safetensors")
        for name, value in original.items():
            assert torch.equal(saved[f"vision_model.{name}"], value), name
    # The learnt temperature is the saved logit scale.
    assert float(saved["logit_scale"].exp()) == pytest.approx(1 / results["temperature"], rel=1e-4)
    reloaded = _reload_in_fresh_process(out, DATA)
    for key, value in reloaded.items():
        assert value == pytest.approx(results[key]), key
    card = (out / "README.md").read_text()
    assert "zero-shot-image-classification" in card and "VisionTextDualEncoderModel" in card


def test_user_csv_of_image_paths_and_captions(tiny, tmp_path):
    """Captions given in a file (no labels): no zero-shot scores, a dual encoder all the same."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        path = tmp_path / f"img{i}.png"
        Image.fromarray((rng.random((20, 20, 3)) * 255).astype("uint8")).save(path)
        rows.append((str(path), f"a {'red' if i % 2 else 'blue'} square number {i}"))
    csv = write_csv(tmp_path / "pairs.csv", rows, header=("path", "description"))
    out = tmp_path / "aligned"
    run = assert_ok(
        run_recipe(
            "align.py",
            "--vision_model_name_or_path",
            tiny("vit"),
            "--text_model_name_or_path",
            tiny("bert"),
            "--train_file",
            csv,
            "--image_column",
            "path",
            "--caption_column",
            "description",
            *TRAIN,
            output_dir=out,
        )
    )
    assert run.results["captions"] == "given" and run.results["train_samples"] == 21
    assert not any(key.startswith("zero_shot") for key in run.results)
    from transformers import VisionTextDualEncoderModel

    assert VisionTextDualEncoderModel.from_pretrained(out).config.projection_dim == 16


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--caption_column", "text"], "--caption_column 'text' reads captions from --train_file"),
        (["--held_out_classes", "Unicorn"], "--held_out_classes ['Unicorn'] are not classes of the data"),
        (["--num_held_out_classes", "10"], "leaves no class to align on"),
        (["--caption_template", "a photo"], "exactly one"),
        (["--text_model_name_or_path", "VISION"], "is a vision model; it needs a text model"),
        (["--text_model_name_or_path", "DISTILBERT"], "gives no pooled output"),
    ],
)
def test_bad_inputs_stop_with_one_line(tiny, tmp_path, flags, message):
    flags = [{"VISION": tiny("vit"), "DISTILBERT": tiny("distilbert")}.get(flag, flag) for flag in flags]
    base = ["--vision_model_name_or_path", tiny("vit"), "--text_model_name_or_path", tiny("bert")]
    run = run_recipe("align.py", *base, *_data_flags(DATA), *TRAIN, *flags, output_dir=tmp_path / "out")
    assert run.returncode == 2, run.output[-3000:]
    assert message in run.output
    assert "Traceback" not in run.output


# ---- the text prior of an image classifier (recipes/finetune.py --head_init text) --------------------------------


def test_text_prior_head_is_the_zero_shot_classifier(tiny, tmp_path):
    """Before any training, the fine-tuned classifier's head started from the class names' text embeddings predicts
    exactly what the dual encoder predicts zero-shot; a ViT tower (its classifier reads the CLS token, not the pooled
    output the alignment projected) is refused in one line."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification, VisionTextDualEncoderProcessor

    from hf_transfer.alignment.evaluation import class_text_embeddings, image_embeddings
    from hf_transfer.data import DataArguments, load_transfer_dataset

    aligned = tmp_path / "aligned"
    tower_flags = ["--vision_model_name_or_path", tiny("timm"), "--text_model_name_or_path", tiny("bert")]
    assert_ok(run_recipe("align.py", *tower_flags, *_data_flags(DATA), *TRAIN, output_dir=aligned))
    head_flags = ["--head_init", "text", "--head_init_model", str(aligned), "--strategy", "full"]
    out = tmp_path / "classifier"
    run = assert_ok(
        run_recipe(
            "finetune.py",
            "--model_name_or_path",
            str(aligned / "vision_tower"),
            *head_flags,
            *_data_flags(DATA),
            "--num_train_epochs",
            "0",
            "--save_strategy",
            "no",
            output_dir=out,
        )
    )
    assert run.results["head_init"] == "text"
    test = load_transfer_dataset(DataArguments(**DATA))["test"]
    classifier = AutoModelForImageClassification.from_pretrained(out).eval()
    pixels = AutoImageProcessor.from_pretrained(out)([im.convert("RGB") for im in test["image"]], return_tensors="pt")
    with torch.no_grad():
        predicted = classifier(**pixels).logits.argmax(-1)
    from transformers import VisionTextDualEncoderModel

    dual = VisionTextDualEncoderModel.from_pretrained(aligned)
    processor = VisionTextDualEncoderProcessor.from_pretrained(aligned)
    names = test.features["label"].names
    zero_shot = (
        image_embeddings(dual, processor.image_processor, test)
        @ class_text_embeddings(dual, processor.tokenizer, names, "a photo of a {}.").T
    ).argmax(-1)
    assert torch.equal(predicted, zero_shot) and len(set(predicted.tolist())) > 1
    assert run.results["test_accuracy"] == pytest.approx(
        json.loads((aligned / "all_results.json").read_text())["zero_shot_all_test_accuracy"]
    )

    vit_aligned = tmp_path / "vit-aligned"
    vit_flags = ["--vision_model_name_or_path", tiny("vit"), "--text_model_name_or_path", tiny("bert")]
    assert_ok(
        run_recipe(
            "align.py", *vit_flags, *_data_flags(DATA), *TRAIN, "--num_train_epochs", "0", output_dir=vit_aligned
        )
    )
    refused = run_recipe(
        "finetune.py",
        "--model_name_or_path",
        str(vit_aligned / "vision_tower"),
        "--head_init",
        "text",
        "--head_init_model",
        str(vit_aligned),
        "--strategy",
        "full",
        *_data_flags(DATA),
        output_dir=tmp_path / "refused",
    )
    assert refused.returncode == 2 and "does not read the pooled features" in refused.output


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--head_init", "text"], "--head_init text needs --head_init_model"),
        (["--head_init", "zero"], "--head_init 'zero' is not one of new, text"),
        (["--head_init_model", "x"], "apply to --head_init text"),
    ],
)
def test_head_init_bad_flags(flags, message):
    from hf_transfer.alignment.head_init import HeadInitArguments

    kwargs = {flags[i][2:]: flags[i + 1] for i in range(0, len(flags), 2)}
    with pytest.raises(ConfigError, match=message):
        HeadInitArguments(**kwargs)


def test_every_vision_tuning_and_head_init_entry_resolves():
    from hf_transfer.alignment import VISION_TUNINGS
    from hf_transfer.alignment.head_init import HEAD_INITS

    for entry in VISION_TUNINGS.entries():
        assert callable(entry.prepare.resolve()), entry.name
    for entry in HEAD_INITS.entries():
        assert entry.apply is None or callable(entry.apply.resolve()), entry.name


def test_a_resumed_alignment_saves_what_the_straight_run_saves(tiny, tmp_path):
    """Checkpoints hold the whole AlignmentModel (LoRA adapters, learnable temperature): a run resumed from the
    middle saves the very model an uninterrupted run saves."""
    flags = [
        "--vision_model_name_or_path",
        tiny("timm"),
        "--text_model_name_or_path",
        tiny("bert"),
        *_data_flags({"dataset_name": "fashion_mnist", "max_train_samples": 64, "max_eval_samples": 20}),
        "--vision_tuning",
        "lora",
        "--num_train_epochs",
        "1",
        "--per_device_train_batch_size",
        "16",
        "--learning_rate",
        "1e-3",
        "--projection_dim",
        "16",
        "--save_strategy",
        "steps",
        "--save_steps",
        "2",
        "--zero_shot_eval",
        "false",
    ]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert_ok(run_recipe("align.py", *flags, output_dir=straight))
    assert_ok(run_recipe("align.py", *flags, output_dir=resumed))
    import shutil

    shutil.rmtree(resumed / "checkpoint-4")  # as if the run had stopped after step 2
    run = assert_ok(run_recipe("align.py", *flags, output_dir=resumed))
    assert run.results["resumed_from_step"] == 2
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6), name


def test_zero_shot_chance_counts_every_label_of_a_multi_label_row():
    """A random prompt among 3 held-out classes is right 1 time in 3 on a one-item row, 2 in 3 on a row holding two of
    them: the chance the scores are read against is the rows' mean, not 1 / 3."""
    from hf_transfer.alignment.evaluation import _chance

    assert _chance([0, 1, 2], [0, 1, 2], multi_label=False) == pytest.approx(1 / 3)
    assert _chance([[0], [0, 1], [1, 2, 7]], [0, 1, 2], multi_label=True) == pytest.approx((1 / 3 + 2 / 3 + 2 / 3) / 3)
