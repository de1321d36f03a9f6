"""Every architecture users bring x every strategy of recipes/finetune.py: what a run saves reloads in a fresh
process, the README's way (AutoModelFor..., PeftModel, merged/, pipeline), to the metrics the run reported.

Tiny random backbones (`tiny_models.TINY_ARCHITECTURES`, saved without a task head, as pretrained models are)
on 48 rows of real data. The four runs of one architecture go in-process; the reload is one fresh interpreter
per test worker (`reload_check.ReloadChecker`), which never runs a recipe itself.
"""

import pytest

from recipe_runner import assert_ok, run_recipe_in_process
from reload_check import ReloadChecker
from tiny_models import TINY_ARCHITECTURES, make_tiny

# A held-out validation split for every strategy (the probe would cross-validate without one): the reload checks
# score the saved model on those rows against the run's eval_* numbers.
DATA = {
    "text": {
        "dataset_name": "tweet_sentiment",
        "max_train_samples": 48,
        "max_eval_samples": 30,
        "validation_split_percentage": 0.1,
    },
    "vision": {
        "dataset_name": "digits",
        "max_train_samples": 48,
        "max_eval_samples": 30,
        "validation_split_percentage": 0.1,
    },
}
TRAIN = [
    "--num_train_epochs",
    "1",
    "--per_device_train_batch_size",
    "16",
    "--per_device_eval_batch_size",
    "16",
    "--learning_rate",
    "5e-3",
    "--save_strategy",
    "no",
    "--lora_r",
    "4",
]
# strategy flags -> what the output folder holds
STRATEGIES = {
    "linear_probe": (["--strategy", "linear_probe"], "probe"),
    "full": (["--strategy", "full", *TRAIN], "full"),
    "lora": (["--strategy", "lora", "--merge_lora", "true", *TRAIN], "lora"),
    "lp_ft": (["--strategy", "lp_ft", "--lp_ft_finetune", "lora", "--merge_lora", "true", *TRAIN], "lora"),
}


# A timm checkpoint carries its ImageNet head: replacing it for other labels takes the flag (a clear error without).
EXTRA_FLAGS = {"timm": ["--ignore_mismatched_sizes", "true"]}
# A sentence-transformers checkpoint (mean pooling) with every strategy on its own pooling: saved in that format.
SAVED_AS = {"sentence-bert": "sentence_transformers"}
EXTRA_FLAGS["sentence-bert"] = ["--pooling", "mean"]


# What an architecture cannot do stops before training with one clear line (exit code 2).
UNSUPPORTED = {
    # transformers' MobileNetV2 reads `stride` from its convolutions (TensorFlow "same" padding): peft's wrappers
    # do not carry it, so LoRA breaks its forward, here and in any reload.
    ("mobilenet_v2", "lora"): "break MobileNetV2ForImageClassification's forward pass",
    ("mobilenet_v2", "lp_ft"): "break MobileNetV2ForImageClassification's forward pass",
}


def _data_flags(data: dict) -> list[str]:
    return [item for key, value in data.items() for item in (f"--{key}", str(value))]


@pytest.fixture(scope="module")
def reload_checker():
    checker = ReloadChecker()
    yield checker
    checker.close()


@pytest.mark.slow  # the second stage (make test-slow)
@pytest.mark.parametrize("architecture", list(TINY_ARCHITECTURES))
def test_every_strategy_reloads_to_the_reported_metrics(architecture, tmp_path, reload_checker, one_torch_thread):
    modality = TINY_ARCHITECTURES[architecture].modality
    base = make_tiny(architecture, tmp_path / "base")
    data = DATA[modality]
    reported, spec = {}, []
    for strategy, (flags, saved) in STRATEGIES.items():
        out = tmp_path / strategy
        run = run_recipe_in_process(
            "finetune.py",
            "--model_name_or_path",
            base,
            *_data_flags(data),
            *flags,
            *EXTRA_FLAGS.get(architecture, []),
            "--feature_cache_dir",
            str(tmp_path / "features"),
            output_dir=out,
        )
        if (architecture, strategy) in UNSUPPORTED:
            assert run.returncode == 2 and UNSUPPORTED[architecture, strategy] in run.output, run.output[-3000:]
            assert "Traceback" not in run.output and not (out / "all_results.json").exists()
            continue
        assert_ok(run)
        reported[str(out)] = run.results
        spec.append(
            {
                "output_dir": str(out),
                "base_model": base,
                "strategy": SAVED_AS.get(architecture, saved),
                "modality": modality,
                "data": data,
            }
        )
    for result in reload_checker(spec):
        assert "error" not in result, result.get("traceback")
        expected = reported[result["output_dir"]]
        for way in ("model", "pipeline", "peft", "sentence_transformers"):
            if way in result:
                got = result[way]
                assert got["accuracy"] == pytest.approx(expected["eval_accuracy"], abs=1e-9), (result, expected)
                assert got["f1"] == pytest.approx(expected["eval_f1"], abs=1e-9), (result, expected)


@pytest.mark.parametrize("architecture", ["distilbert", "deberta-v2"])
def test_probe_rerun_with_another_seed_reuses_features_and_still_reloads(
    architecture, tmp_path, reload_checker, one_torch_thread
):
    """The cached features come from pretrained weights only, so another --seed may reuse them: the saved head is
    built from them (and from nothing random), and reloads to what the rerun reports."""
    base = make_tiny(architecture, tmp_path / "base")
    data = DATA["text"]
    spec, reported, cached = [], {}, []
    for seed in ("1", "2"):
        out = tmp_path / f"seed{seed}"
        run = assert_ok(
            run_recipe_in_process(
                "finetune.py",
                "--model_name_or_path",
                base,
                *_data_flags(data),
                "--strategy",
                "linear_probe",
                "--seed",
                seed,
                "--feature_cache_dir",
                str(tmp_path / "features"),
                output_dir=out,
            )
        )
        reported[str(out)] = run.results
        spec.append({"output_dir": str(out), "base_model": base, "strategy": "probe", "modality": "text", "data": data})
        cached.append({f.name: f.stat().st_mtime_ns for f in (tmp_path / "features").iterdir()})
    assert len(cached[0]) == 3 and cached[1] == cached[0]  # train, validation, test: read back, not extracted again
    assert reported[spec[0]["output_dir"]]["eval_accuracy"] == reported[spec[1]["output_dir"]]["eval_accuracy"]
    for result in reload_checker(spec):
        assert "error" not in result, result.get("traceback")
        assert result["model"]["accuracy"] == pytest.approx(reported[result["output_dir"]]["eval_accuracy"], abs=1e-9)
