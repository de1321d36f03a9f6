"""`hf-transfer compare --task object_detection`: the cells run recipes/detect.py (the compared recipe comes from the
task entry's `recipe`), the budget is training images, the table scores test mAP, mAP@50, mAP@75 and AP per class,
`--backbone_init pretrained random` is the transfer gain as an arm, and what detect has no option for is refused."""

import csv
import json
import math
from pathlib import Path

import pytest

from hf_transfer.__main__ import main
from hf_transfer.comparison import Cell, CellResult, CompareArguments, build_grid, recommend, summarize
from hf_transfer.comparison.command import parse_arguments
from hf_transfer.comparison.compared import ARM_FLAGS, COMPARED_RECIPES, compared_recipe_for
from hf_transfer.comparison.grid import _cell_request
from hf_transfer.comparison.summary import write_csv, write_markdown
from hf_transfer.errors import ConfigError
from hf_transfer.tasks import TASKS
from recipe_runner import ROOT

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# A tiny neck (tests/test_detection.py's): each cell takes seconds.
TINY_NECK = "--d_model 32 --ffn_dim 32 --attention_heads 2 --encoder_layers 1 --decoder_layers 1 --num_queries 5"


def test_the_compared_recipe_comes_from_the_task_entry():
    assert compared_recipe_for("auto").name == "finetune" == compared_recipe_for("single_label").name
    detect = compared_recipe_for("object_detection")
    assert detect.name == TASKS.get("object_detection").recipe and detect.script == "detect.py"
    assert detect.headline.key == TASKS.get("object_detection").headline_metric == "map"
    assert [m.name for m in detect.metrics] == ["mAP", "mAP@50", "mAP@75"]
    assert detect.strategies.names() == ("frozen_backbone", "full", "lora", "head_then_full")
    assert set(COMPARED_RECIPES.names()) == {task.recipe for task in TASKS.entries()}  # every task's recipe


@pytest.mark.parametrize("name", COMPARED_RECIPES.names())
def test_every_compared_recipe_names_what_its_recipe_has(name):
    """Each entry's references resolve, and the arguments it sets per cell are the recipe's own."""
    from dataclasses import fields

    recipe = COMPARED_RECIPES.get(name)
    classes = recipe.argument_classes()
    arguments = {f.name for cls in classes for f in fields(cls)}
    assert recipe.data_arguments.resolve() in classes and callable(recipe.plan_rows.resolve())
    assert callable(recipe.data_name.resolve()) and (ROOT / "recipes" / recipe.script).is_file()
    assert {recipe.model_argument, recipe.budget_argument, *recipe.cell_flags} <= arguments
    assert recipe.rows_seed_argument is None or recipe.rows_seed_argument in arguments
    assert set(recipe.default_strategies) <= set(recipe.strategies.names())
    assert set(recipe.arms) <= set(ARM_FLAGS) and all(task in TASKS or task == "auto" for task in recipe.tasks)


def test_detection_cells_get_detects_flags_and_their_own_folders():
    cells = build_grid(
        ["efficientnet-lite0"], ["frozen_backbone", "full"], ["300", "100"], [0], backbone_inits=["pretrained", "random"],
        recipe="detect",
    )  # fmt: skip
    assert len(cells) == 8 and [c.label_budget for c in cells[:4]] == ["100"] * 4
    pretrained, random = cells[0], cells[1]
    assert pretrained.folder_name == "efficientnet-lite0--frozen_backbone--100-images--seed0"
    assert random.folder_name == "efficientnet-lite0--frozen_backbone--backbone_init-random--100-images--seed0"
    assert pretrained.recipe_flags() == [
        "--backbone", "efficientnet-lite0", "--strategy", "frozen_backbone", "--seed", "0", "--max_train_samples", "100",
    ]  # fmt: skip
    assert random.arm_label == "+ random-init backbone" and pretrained.arm_label == ""
    args = CompareArguments(
        task="object_detection", recipe_args="--num_train_epochs 2", backbone_init=["pretrained", "random"]
    )
    assert args.flags_for("full") == ["--num_train_epochs", "2"]
    assert args.flags_for("full", backbone_init="random") == ["--num_train_epochs", "2", "--random_init", "true"]
    assert _cell_request(random, [])["cell"] == {
        "model": "efficientnet-lite0", "strategy": "frozen_backbone", "label_budget": "100", "seed": 0,
        "backbone_init": "random", "recipe": "detect",
    }  # fmt: skip
    plain = Cell("m", "full", "8", 0)  # a classification cell asks what it asked before detection existed
    assert _cell_request(plain, [])["cell"] == {"model": "m", "strategy": "full", "label_budget": "8", "seed": 0}


def test_detection_takes_detects_flag_names_and_its_defaults(tmp_path):
    data = ["--dataset_name", "digits_boxes", "--image_size", "64"]
    data_args, args, _ = parse_arguments(
        ["--task", "object_detection", "--backbone", "a", "b", "--max_train_samples", "10", "all", *data]
    )
    assert type(data_args).__name__ == "DetectionDataArguments" and data_args.max_train_samples is None
    assert args.model_name_or_path == ["a", "b"] and args.label_budgets == ["10", "all"]
    assert args.strategies == ["frozen_backbone", "full"] and args.compared.name == "detect"
    _, same, _ = parse_arguments(
        ["--task=object_detection", "--models", "a", "b", "--label_budgets", "10", "all", *data]
    )
    assert same == args
    with pytest.raises(
        ConfigError, match="--train_samples_per_class is the budget of recipes/finetune.py .* pass --max"
    ):
        parse_arguments(["--task", "object_detection", "--train_samples_per_class", "8", *data])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"strategies": ["linear_probe"]}, r"--strategies linear_probe: unknown; choose from frozen_backbone, full, "),
        ({"selection": ["typical"]}, "--selection does not apply to object detection: recipes/detect.py has no such"),
        ({"unlabelled": ["rest"]}, "--unlabelled does not apply to object detection"),
        ({"pool_samples": 100}, "--pool_samples does not apply to object detection"),
        ({"head_init": ["new", "text"]}, "--head_init does not apply to object detection"),
        ({"hp_search": 4}, "--hp_search does not apply to object detection"),
        (
            {"recipe_args": "--max_train_samples 5"},
            r"sets --max_train_samples .*\(--max_train_samples \(the budgets\) of compare",
        ),
        ({"recipe_args": "--random_init true"}, "sets --random_init .*--backbone_init of compare"),
        ({"recipe_args": "--image_size 64"}, "sets the data flag --image_size"),
        ({"recipe_args": "--task single_label"}, "--task is not a flag of recipes/detect.py"),
        ({"strategy_args": ["lp_ft: --num_train_epochs 2"]}, "STRATEGY one of frozen_backbone, full, lora"),
        ({"backbone_init": ["imagenet"]}, "--backbone_init 'imagenet' is not one of pretrained, random"),
    ],
)
def test_what_detect_has_no_option_for_is_one_line(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        CompareArguments(task="object_detection", **kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"backbone_init": ["pretrained", "random"]}, "--backbone_init does not apply to single-label classification"),
        ({"recipe_args": "--task object_detection"}, "pass --task object_detection to hf-transfer compare itself"),
        ({"task": "multi_label"}, "compare scores single-label classification and object detection, not --task multi"),
    ],
)
def test_classification_refuses_what_only_detection_has(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        CompareArguments(**kwargs)


def _detection_result(strategy, seed, score, backbone_init="pretrained"):
    results = {"test_map": score, "test_map_50": score + 0.2, "test_map_75": score - 0.05, "train_runtime": 10.0}
    results.update({"test_ap_cat": score + 0.1, "test_ap_dog": -1.0, "trainable_params": 7})
    cell = Cell("m", strategy, "50", seed, backbone_init=backbone_init, recipe="detect")
    return CellResult(cell, results, 100.0, Path("log"))


def test_the_detection_table_reads_map_and_ap_per_class(tmp_path):
    cells = [_detection_result("full", s, 0.30 + 0.01 * s) for s in range(3)]
    cells += [_detection_result("full", s, 0.10 + 0.01 * s, "random") for s in range(3)]
    rows = summarize(cells)
    pretrained, random = rows
    assert pretrained.score("map") == (pytest.approx(0.31), pytest.approx(0.01))
    assert (
        pretrained.score("map_50")[0] == pytest.approx(0.51) and pretrained.headline_mean == pretrained.score("map")[0]
    )
    assert pretrained.per_label == {"cat": pytest.approx(0.41)}  # -1 (absent from the split) left out
    with pytest.raises(KeyError, match="not a score of detect"):
        pretrained.score("accuracy")  # a classification score a detection row does not have
    line = recommend(rows)
    assert line.startswith("Recommended with 50 training images: m full (0.310 ± 0.010 against 0.110 ± 0.010 for m")
    assert "m full + random-init backbone" in line
    write_csv(rows, tmp_path / "comparison.csv")
    header = next(csv.reader((tmp_path / "comparison.csv").open()))
    assert header[5:11] == ["map_mean", "map_std", "map_50_mean", "map_50_std", "map_75_mean", "map_75_std"]
    table = write_markdown(rows, line, [], tmp_path / "comparison.md")
    assert "| train images | boxes per class | test mAP | test mAP@50 | test mAP@75 |" in table
    assert "| m | full | 50 |  | 0.310 ± 0.010 (3) | 0.510 ± 0.010 | 0.260 ± 0.010 |" in table
    assert "## AP per class" in table and "| m | full, + random-init backbone | 50 | 0.210 |" in table
    assert "## Transfer gain" in table
    assert "| m | full | 50 | 0.310 | random-init backbone: 0.110 | +0.200 ± 0.014 |" in table
    assert not math.isnan(rows[1].headline_std)


@pytest.mark.slow  # recipes/detect.py runs on a tiny timm backbone, a resume, then the random-init arm
def test_compare_runs_a_detection_grid_writes_map_and_resumes(tiny, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--task", "object_detection", "--backbone", tiny("timm"), "--strategy", "frozen_backbone"]
    args += ["full", "--max_train_samples", "12", "--seed", "0", "--dataset_name", "digits_boxes", "--image_size", "64"]
    args += ["--max_eval_samples", "6", "--output_dir", str(out)]
    args += ["--recipe_args", f"{TINY_NECK} --num_train_epochs 1 --per_device_train_batch_size 6 --save_strategy no"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "compare: 2 cells, 0 finished earlier, 2 to run" in err and "[2/2]" in err
    table = (out / "comparison.md").read_text()
    assert "| train images | boxes per class | test mAP | test mAP@50 | test mAP@75 |" in table
    assert "No call with 12 training images" in table and "one seed has no spread" in table
    assert "## AP per class" in table
    for png in ("map_vs_images.png", "map_vs_time.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({png})" in table
    rows = list(csv.DictReader((out / "comparison.csv").open()))
    assert [r["strategy"] for r in rows] == ["frozen_backbone", "full"] and rows[0]["train_images"] == "12"
    assert "boxes_per_class_max" in rows[0] and "rows_per_class_max" not in rows[0]
    assert all(0.0 <= float(r["map_mean"]) <= 1.0 for r in rows)
    cell = out / "cells" / Cell(tiny("timm"), "full", "12", 0, recipe="detect").folder_name
    results = json.loads((cell / "all_results.json").read_text())
    assert results["strategy"] == "full" and results["train_samples"] == 12 and results["random_init"] is False
    assert float(rows[1]["map_mean"]) == pytest.approx(results["test_map"])
    numbers = [json.loads(line) for line in (out / "comparison_cells.jsonl").read_text().splitlines()]
    assert {"test_map", "test_map_50", "test_map_75"} <= set(numbers[1]) and any(
        k.startswith("test_ap_") for k in numbers[1]
    )
    assert numbers[1]["train_images"] == 12 and sum(numbers[1]["boxes_per_class"].values()) >= 12

    # Rerun: nothing runs again; one missing result: only that cell runs.
    assert main(args) == 0 and "2 finished earlier, 0 to run" in capsys.readouterr().err
    (cell / "all_results.json").unlink()
    assert main(args) == 0 and "1 finished earlier, 1 to run" in capsys.readouterr().err

    # The random-init arm beside them: the pretrained cells are the finished ones, the random-init ones run.
    assert main([*args, "--backbone_init", "pretrained", "random"]) == 0
    assert "4 cells, 2 finished earlier, 2 to run" in capsys.readouterr().err
    random = out / "cells" / Cell(tiny("timm"), "full", "12", 0, backbone_init="random", recipe="detect").folder_name
    assert json.loads((random / "all_results.json").read_text())["random_init"] is True
    table = (out / "comparison.md").read_text()
    assert "| full, + random-init backbone | 12 |" in table and "## Transfer gain" in table


def _write_coco(folder: Path, boxes: list, size: int = 64) -> str:
    from PIL import Image

    folder.mkdir(parents=True)
    images, annotations = [], []
    for index, box in enumerate(boxes):
        Image.new("RGB", (size, size), (index * 30, 0, 0)).save(folder / f"{index}.png")
        images.append({"id": index, "file_name": f"{index}.png", "width": size, "height": size})
        annotations.append({"id": index, "image_id": index, "bbox": box, "category_id": 1})
    coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]}
    (folder / "annotations.json").write_text(json.dumps(coco))
    return str(folder)


def test_a_bad_box_stops_the_comparison_before_any_cell(tmp_path, capsys):
    train = _write_coco(tmp_path / "train", [[1, 1, 10, 10], [1, 1, 10, 10], [50, 50, 30, 10], [2, 2, 5, 5]])
    out = tmp_path / "cmp"
    args = ["compare", "--task", "object_detection", "--backbone", "efficientnet-lite0", "--train_dir", train]
    args += ["--max_train_samples", "2", "all", "--seed", "0", "--output_dir", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "outside the 64x64 image" in lines[0], err[-2000:]
    assert "image_id 2" in lines[0] and "Traceback" not in err and not (out / "cells").exists()
