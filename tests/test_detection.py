"""Object detection (`recipes/detect.py`, `hf_transfer.detection`): the derived canvas sets, COCO-folder and
`objects`-column data with their box checks, box-aware augmentation, the pretrained backbone inside the detector, and
every strategy's saved detector reloaded in a fresh process (`AutoModelForObjectDetection`, `pipeline`) to its
reported mAP, on two backbone families (a timm model, a transformers AutoBackbone)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from hf_transfer.errors import ConfigError, DataError
from recipe_runner import OFFLINE_ENV, ROOT, assert_ok, run_recipe

# A tiny neck: the runs take seconds on two busy cores.
TINY_NECK = ["--d_model", "32", "--ffn_dim", "32", "--attention_heads", "2", "--encoder_layers", "1"]
TINY_NECK += ["--decoder_layers", "1", "--num_queries", "5", "--per_device_train_batch_size", "8"]
DIGITS = {"dataset_name": "digits_boxes", "max_train_samples": 16, "max_eval_samples": 8, "image_size": 64}
FASHION = {**DIGITS, "dataset_name": "fashion_mnist_boxes"}


def _flags(data: dict) -> list[str]:
    return [item for key, value in data.items() for item in (f"--{key}", str(value))]


def _detector_args(backbone: str, **overrides):
    from hf_transfer.detection import DetectorArguments

    size = dict(d_model=32, ffn_dim=32, attention_heads=2, encoder_layers=1, decoder_layers=1, num_queries=5)
    return DetectorArguments(backbone=backbone, **{**size, **overrides})


# --- Data ----------------------------------------------------------------------------------------------------------


def test_canvas_sets_are_deterministic_nested_and_their_boxes_hold_the_items():
    from hf_transfer.detection.canvases import create_canvas_set

    small = create_canvas_set("digits_boxes", image_size=64, train_images=4, eval_images=2)
    again = create_canvas_set("digits_boxes", image_size=64, train_images=4, eval_images=2)
    larger = create_canvas_set("digits_boxes", image_size=64, train_images=8, eval_images=2)
    assert small["train"]["objects"] == again["train"]["objects"] == larger["train"]["objects"][:4]
    assert small["train"]["image"][0].tobytes() == larger["train"]["image"][0].tobytes()
    assert set(small) == {"train", "validation", "test"}
    for row in small["train"]:
        pixels = np.asarray(row["image"].convert("L"), dtype=np.float32)
        assert 1 <= len(row["objects"]["bbox"]) <= 3
        for x, y, w, h in row["objects"]["bbox"]:
            assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= 64 and y + h <= 64
            inside = pixels[int(y) : int(y + h), int(x) : int(x + w)]
            assert inside.max() > 120  # the bright item is there, not empty background
    fashion = create_canvas_set("fashion_mnist_boxes", image_size=64, train_images=2, eval_images=1)
    assert fashion["train"].features["objects"]["category"].feature.names[0] == "T-shirt/top"


def _write_coco(folder, boxes, categories=((5, "cat"), (9, "dog")), size=64) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index, image_boxes in enumerate(boxes):
        Image.new("RGB", (size, size), (index * 40, 0, 0)).save(folder / f"{index}.png")
        images.append({"id": 100 + index, "file_name": f"{index}.png", "width": size, "height": size})
        for box, category in image_boxes:
            annotations.append({"id": len(annotations), "image_id": 100 + index, "bbox": box, "category_id": category})
    coco = {"images": images, "annotations": annotations, "categories": [{"id": i, "name": n} for i, n in categories]}
    (folder / "annotations.json").write_text(json.dumps(coco))
    return str(folder)


def test_a_coco_folder_loads_with_categories_renumbered(tmp_path):
    from hf_transfer.detection import DetectionDataArguments, load_detection_dataset

    good = [[([1, 2, 10, 12], 9)], [([5, 5, 20, 20], 5), ([30, 30, 10, 10], 9)], [], [([0, 0, 64, 64], 5)]]
    train = _write_coco(tmp_path / "train", good)
    validation = _write_coco(tmp_path / "validation", good[:2])
    splits = load_detection_dataset(DetectionDataArguments(train_dir=train, validation_dir=validation))
    assert splits["train"].features["objects"]["category"].feature.names == ["cat", "dog"]
    assert splits["train"][1]["objects"] == {"bbox": [[5, 5, 20, 20], [30, 30, 10, 10]], "category": [0, 1]}
    assert splits["train"]["image_id"] == [100, 101, 102, 103] and len(splits["validation"]) == 2


@pytest.mark.parametrize(
    "box, category, message",
    [
        (
            [10, 10, -4, 5],
            5,
            r"split 'train', row 1 \(image_id 101\), box 0 \[10.0, 10.0, -4.0, 5.0\]: zero or negative width / height",
        ),
        (
            [50, 50, 30, 10],
            5,
            r"split 'train', row 1 \(image_id 101\), box 0 \[50.0, 50.0, 30.0, 10.0\]: outside the 64x64 image",
        ),
        ([10, 10, 5, 5], 7, r"annotation 1 \(image_id 101\) has category_id 7, not one of `categories` \(5, 9\)"),
    ],
)
def test_bad_boxes_stop_the_run_with_one_line_naming_the_row(tmp_path, box, category, message):
    train = _write_coco(tmp_path / "train", [[([1, 2, 10, 12], 9)], [(box, category)]])
    run = run_recipe("detect.py", "--backbone", "efficientnet-lite0", "--train_dir", train, output_dir=tmp_path / "out")
    assert run.returncode == 2, run.output[-3000:]
    assert "Traceback" not in run.output
    assert len([line for line in run.output.splitlines() if "error" in line.lower()]) == 1, run.output[-2000:]
    import re

    assert re.search(message, run.output), run.output[-2000:]


def test_datasets_rows_with_an_objects_column_load_and_are_checked(tmp_path):
    from datasets import Dataset

    from hf_transfer.detection import DetectionDataArguments, load_detection_dataset
    from hf_transfer.detection.canvases import detection_features

    features = detection_features(["a", "b"])
    rows = {
        "image_id": list(range(6)),
        "image": [Image.new("RGB", (40, 30)) for _ in range(6)],
        "objects": [{"bbox": [[1.0, 1.0, 10.0, 10.0]], "category": [i % 2]} for i in range(6)],
    }
    folder = tmp_path / "hub_like"
    folder.mkdir()
    Dataset.from_dict(rows, features=features).rename_column("objects", "things").to_parquet(folder / "train.parquet")
    args = DetectionDataArguments(dataset_name=str(folder), objects_column="things", validation_split_percentage=0.5)
    splits = load_detection_dataset(args)
    assert len(splits["train"]) == 3 and len(splits["validation"]) == 3
    assert splits["train"].features["objects"]["category"].feature.names == ["a", "b"]

    rows["objects"][4] = {"bbox": [[35.0, 1.0, 10.0, 10.0]], "category": [0]}  # past the right edge of 40 px
    bad = tmp_path / "bad"
    bad.mkdir()
    Dataset.from_dict(rows, features=features).to_parquet(bad / "train.parquet")
    with pytest.raises(
        DataError, match=r"row 4 \(image_id 4\), box 0 \[35.0, 1.0, 10.0, 10.0\]: outside the 40x30 image"
    ):
        load_detection_dataset(DetectionDataArguments(dataset_name=str(bad), validation_split_percentage=0.5))


def test_box_augmentation_moves_boxes_with_their_pixels():
    """A bright square on black: after each flip / scale-crop, a kept box is where the bright pixels are."""
    from hf_transfer.detection import create_box_augmentation

    augment = create_box_augmentation(64)
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    image[10:30, 36:60] = 255  # box [36, 10, 24, 20]
    seen_flip = seen_crop = False
    for _ in range(40):
        out = augment(image=image, bboxes=np.array([[36.0, 10.0, 24.0, 20.0]]), category=[3])
        assert out["image"].shape == (64, 64, 3)
        bright = np.argwhere(out["image"][..., 0] > 127)
        if len(out["bboxes"]) == 0:  # cropped mostly away: dropped, not kept as a sliver
            continue
        assert out["category"] == [3]
        x, y, w, h = out["bboxes"][0]
        assert 0 <= x and 0 <= y and x + w <= 64 + 1e-3 and y + h <= 64 + 1e-3
        (y0, x0), (y1, x1) = bright.min(0), bright.max(0) + 1
        assert abs(x - x0) <= 2 and abs(y - y0) <= 2 and abs(x + w - x1) <= 2 and abs(y + h - y1) <= 2
        seen_flip |= x < 30 and w < 30
        seen_crop |= abs(w - 24) > 2
    assert seen_flip and seen_crop


# --- Model ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["timm", "resnet"])
def test_the_pretrained_backbone_is_loaded_into_the_detector_and_random_init_is_not(tiny, family):
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_BACKBONE_MAPPING

    from hf_transfer.detection import backbone_module, create_detector, neck_module_names, set_trainable

    folder = tiny(family)
    detector = create_detector(_detector_args(folder), ["a", "b"], 64)
    if family == "timm":
        from safetensors.torch import load_file

        reference = load_file(f"{folder}/model.safetensors")
    else:
        reference = MODEL_FOR_BACKBONE_MAPPING[type(AutoConfig.from_pretrained(folder))].from_pretrained(folder)
        reference = reference.state_dict()
    backbone = backbone_module(detector.model).state_dict()
    shared = [k for k in backbone if k in reference and not k.endswith("num_batches_tracked")]
    assert len(shared) > 10 and all(torch.equal(backbone[k], reference[k]) for k in shared)
    random = backbone_module(create_detector(_detector_args(folder, random_init=True), ["a", "b"], 64).model)
    assert not all(torch.equal(random.state_dict()[k], reference[k]) for k in shared)
    assert detector.model.config.id2label == {0: "a", 1: "b"}

    neck = neck_module_names(detector.model)
    assert "class_labels_classifier" in neck and "bbox_predictor" in neck
    assert not any(name.startswith("model.backbone") for name in neck)
    set_trainable(detector.model, "neck")
    frozen = {id(p) for p in backbone_module(detector.model).parameters()}
    for parameter in detector.model.parameters():
        assert parameter.requires_grad == (id(parameter) not in frozen)


def test_detection_is_a_task_registry_entry_and_finetune_points_to_its_recipe():
    from transformers import AutoModelForObjectDetection

    from hf_transfer.finetuning.arguments import TransferArguments
    from hf_transfer.tasks import TASKS

    task = TASKS.get("object_detection")
    assert task.model_class("vision") == AutoModelForObjectDetection.__name__
    assert task.pipeline_tag("vision") == "object-detection" and task.headline_metric == "map"
    with pytest.raises(ConfigError, match="is trained by recipes/detect.py"):
        TransferArguments(task="object_detection")


# --- Every strategy, saved and reloaded ----------------------------------------------------------------------------


@pytest.mark.slow  # the second stage (make test-slow): eight recipe runs and a fresh-process reload
def test_every_strategy_saves_a_detector_that_reloads_to_its_reported_map(tiny, tmp_path):
    """frozen_backbone, full, lora, head_then_full on a timm backbone; full on an AutoBackbone (ResNet), with
    Conditional DETR and with DETR; and an existing detection checkpoint fine-tuned on another set's classes. Each output folder, in a fresh process:
    AutoModelForObjectDetection reproduces the reported test scores and pipeline("object-detection") returns the
    same detections."""
    from safetensors.torch import load_file

    common = [*TINY_NECK, "--num_train_epochs", "2", "--save_strategy", "no", "--learning_rate", "1e-3"]
    runs = {}
    for name, backbone, strategy in [
        ("frozen", tiny("timm"), "frozen_backbone"),
        ("full", tiny("timm"), "full"),
        ("lora", tiny("timm"), "lora"),
        ("head_then_full", tiny("timm"), "head_then_full"),
        ("resnet_full", tiny("resnet"), "full"),
        ("resnet_lora", tiny("resnet"), "lora"),
        ("detr_full", tiny("resnet"), "full --architecture detr"),
    ]:
        strategy, *more = strategy.split()
        args = ["--backbone", backbone, "--strategy", strategy, *more, *_flags(DIGITS), *common]
        runs[name] = (assert_ok(run_recipe("detect.py", *args, output_dir=tmp_path / name)), DIGITS)
    transfer = ["--model_name_or_path", str(tmp_path / "full"), *_flags(FASHION), *common]
    runs["from_detector"] = (
        assert_ok(run_recipe("detect.py", *transfer, output_dir=tmp_path / "from_detector")),
        FASHION,
    )

    results = {name: run.results for name, (run, _) in runs.items()}
    assert results["frozen"]["trainable_params"] < results["frozen"]["total_params"]
    assert results["frozen"]["trainable_params"] < results["lora"]["trainable_params"]  # neck + adapters
    assert results["lora"]["trainable_params"] < results["full"]["trainable_params"]
    assert results["resnet_lora"]["trainable_params"] < results["resnet_full"]["trainable_params"]
    assert "neck_stage_train_loss" in results["head_then_full"] and "train_loss" in results["head_then_full"]
    # frozen_backbone saved the pretrained backbone untouched; full moved it
    pretrained = load_file(f"{tiny('timm')}/model.safetensors")
    key = next(k for k in pretrained if k.startswith("conv_stem"))
    saved = {n: load_file(tmp_path / n / "model.safetensors") for n in ("frozen", "full")}
    backbone_key = next(k for k in saved["frozen"] if "backbone" in k and k.endswith(f".model.{key}"))
    assert torch.equal(saved["frozen"][backbone_key], pretrained[key])
    assert not torch.equal(saved["full"][backbone_key], pretrained[key])
    assert json.loads((tmp_path / "detr_full" / "config.json").read_text())["model_type"] == "detr"
    config = json.loads((tmp_path / "from_detector" / "config.json").read_text())
    assert config["id2label"]["0"] == "T-shirt/top"
    card = (tmp_path / "lora" / "README.md").read_text()
    assert "pipeline_tag: object-detection" in card and "### AP per class" in card

    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps([{"output_dir": str(tmp_path / n), "data": data} for n, (_, data) in runs.items()]))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "detection_reload_check.py"), str(spec)],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, **OFFLINE_ENV},
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    for check in json.loads(proc.stdout.strip().splitlines()[-1]):
        name = check["output_dir"].rsplit("/", 1)[-1]
        reported = results[name]
        for metric, value in check["model"].items():
            assert value == pytest.approx(reported[f"test_{metric}"], abs=1e-6), (name, metric)
        assert check["pipeline_matches_model"], name


def test_the_backbone_computes_inside_the_detector_what_it_computes_alone(tiny):
    """DETR's own frozen batch norm (eps 1e-5, no activation) in place of timm's BatchNormAct2d changes the
    pretrained function: the detector keeps timm's frozen norms, and the check catches a detector that does not."""
    import timm
    from safetensors.torch import load_file
    from transformers import AutoModelForObjectDetection

    from hf_transfer.detection import backbone_module, create_detector
    from hf_transfer.detection.model import _check_same_features, _load_backbone_weights
    from hf_transfer.errors import ModelLoadError

    folder = tiny("timm")
    detector = create_detector(_detector_args(folder), ["a"], 64)  # runs the check itself
    config = detector.model.config
    index = config.backbone_config.out_indices
    reference = timm.create_model("test_efficientnet", features_only=True, out_indices=index)
    weights = load_file(f"{folder}/model.safetensors")
    reference.load_state_dict({k: v for k, v in weights.items() if k in reference.state_dict()})
    _check_same_features(backbone_module(detector.model), reference, folder)

    config.backbone_config.freeze_batch_norm_2d = False  # DETR's replacement alone
    detr_norms = AutoModelForObjectDetection.from_config(config)
    _load_backbone_weights(detr_norms, weights, folder)
    with torch.no_grad():  # non-trivial statistics, so a wrong epsilon or a lost activation shows
        for module in reference.modules():
            if hasattr(module, "running_var"):
                module.running_var.uniform_(0.0005, 0.002)
    weights = {**weights, **reference.state_dict()}
    _load_backbone_weights(detr_norms, weights, folder)
    with pytest.raises(ModelLoadError, match="does not compute what it computes alone"):
        _check_same_features(backbone_module(detr_norms), reference, folder)


def test_push_to_the_hub_with_a_card_and_load_back_with_the_pipeline(tiny, tmp_path, hub_server):
    """--push_to_hub, like every recipe: the Hub copy (card included) loads in a fresh process with
    AutoModelForObjectDetection and pipeline("object-detection") and detects what the local folder detects."""
    repo = "test-user/tiny-detector"
    args = ["--backbone", tiny("timm"), *_flags(DIGITS), *TINY_NECK, "--num_train_epochs", "1", "--save_strategy", "no"]
    out = tmp_path / "out"
    assert_ok(
        run_recipe(
            "detect.py", *args, "--push_to_hub", "true", "--hub_model_id", repo, output_dir=out,
            env={"HF_HUB_OFFLINE": "0"},
        )
    )  # fmt: skip
    assert "README.md" in hub_server.list_files(repo)
    assert "pipeline_tag: object-detection" in hub_server.read_file(repo, "README.md").decode()
    code = (
        "import json, torch\nfrom PIL import Image\nfrom transformers import AutoModelForObjectDetection, pipeline\n"
        f"AutoModelForObjectDetection.from_pretrained('{repo}')\n"
        f"found = pipeline('object-detection', model='{repo}')(Image.new('RGB', (64, 64), (90, 20, 200)), threshold=0.0)\n"
        "print(json.dumps([[d['label'], round(d['score'], 5)] for d in found]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    from transformers import pipeline

    local = pipeline("object-detection", model=str(out))(Image.new("RGB", (64, 64), (90, 20, 200)), threshold=0.0)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [[d["label"], round(d["score"], 5)] for d in local]
