#!/usr/bin/env python
"""Inter-domain transfer, text <-> images: zero-shot accuracy on classes held out of alignment, and few-shot image
classification with and without the text prior.

Per seed: (1) `recipes/align.py` aligns an image tower (frozen: LiT) with a text tower on the pairs of the seen
classes (captions made from class names), and reports zero-shot accuracy on the held-out classes (their prompts only),
the seen ones and all ten, before and after alignment; (2) `recipes/finetune.py --strategy full` trains an image
classifier on the aligned image tower (`<aligned>/vision_tower`) with K labelled images per class, its head new
(`--head_init new`) or started from the class names' text embeddings (`--head_init text`), scored on the test split.
Every cell is a recipe run in a fresh process, as a user runs it; the numbers go to `--output_file`.

    flock /work/heavy.lock python benchmarks/align_transfer.py --seeds 0 1 2
"""

from __future__ import annotations

import json
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

from _common import ONE_FINAL_EVALUATION, machine_info, run_recipe_for_results


@dataclass
class BenchmarkArguments:
    vision_model: str = field(default="efficientnet-lite0", metadata={"help": "Image tower."})
    text_model: str = field(default="minilm", metadata={"help": "Text tower."})
    dataset_name: str = field(default="fashion_mnist", metadata={"help": "A built-in single-label image set."})
    held_out_classes: list[str] = field(
        default_factory=lambda: ["Sandal", "Shirt", "Bag"], metadata={"help": "Classes kept out of alignment."}
    )
    image_size: int = field(default=64, metadata={"help": "Image side fed to the image tower."})
    align_samples: int = field(default=800, metadata={"help": "Alignment pairs (before the held-out rows leave)."})
    eval_samples: int = field(default=500, metadata={"help": "Test rows scored (and validation rows)."})
    align_epochs: int = field(default=3, metadata={"help": "Alignment epochs."})
    align_learning_rate: float = field(default=1e-4, metadata={"help": "Alignment learning rate."})
    shots: list[int] = field(default_factory=lambda: [1, 4, 16], metadata={"help": "Labelled images per class."})
    finetune_epochs: int = field(default=15, metadata={"help": "Few-shot fine-tuning epochs."})
    finetune_learning_rate: float = field(default=1e-4, metadata={"help": "Few-shot learning rate of the backbone."})
    finetune_head_learning_rate: float = field(default=1e-2, metadata={"help": "Few-shot learning rate of the head."})
    caption_template: str = field(default="a photo of a {}.", metadata={"help": "Captions and prompts."})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Seeds (alignment and label draws)."})
    output_file: str = field(default="benchmarks/results/align_transfer.json", metadata={"help": "Where to write."})


def main() -> None:
    (args,) = HfArgumentParser(BenchmarkArguments).parse_args_into_dataclasses()
    data = ["--dataset_name", args.dataset_name, "--max_eval_samples", str(args.eval_samples)]
    records = {"arguments": vars(args), "machine": machine_info("timm", "peft"), "align": [], "fewshot": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            aligned = f"{tmp}/aligned-{seed}"
            results = run_recipe_for_results(
                "align.py",
                [
                    "--vision_model_name_or_path", args.vision_model, "--text_model_name_or_path", args.text_model,
                    *data, "--max_train_samples", str(args.align_samples), "--image_size", str(args.image_size),
                    "--held_out_classes", *args.held_out_classes, "--num_train_epochs", str(args.align_epochs),
                    "--caption_template", args.caption_template,
                    "--learning_rate", str(args.align_learning_rate), "--per_device_train_batch_size", "64",
                    "--seed", str(seed), *ONE_FINAL_EVALUATION,
                ],
                aligned,
            )  # fmt: skip
            records["align"].append({"seed": seed, **{k: v for k, v in results.items() if k.startswith("zero_shot")}})
            print(json.dumps(records["align"][-1]), flush=True)
            for shots in args.shots:
                for init in ("new", "text"):
                    head = ["--head_init", "text", "--head_init_model", aligned] if init == "text" else []
                    scores = run_recipe_for_results(
                        "finetune.py",
                        [
                            "--model_name_or_path", f"{aligned}/vision_tower", "--strategy", "full", *head, *data,
                            "--train_samples_per_class", str(shots), "--train_samples_seed", str(seed),
                            "--num_train_epochs", str(args.finetune_epochs), "--per_device_train_batch_size", "16",
                            "--learning_rate", str(args.finetune_learning_rate),
                            "--head_learning_rate", str(args.finetune_head_learning_rate), "--seed", str(seed),
                            *ONE_FINAL_EVALUATION,
                        ],
                        f"{tmp}/fewshot-{seed}-{shots}-{init}",
                    )  # fmt: skip
                    row = {"seed": seed, "shots": shots, "head_init": init, "test_accuracy": scores["test_accuracy"]}
                    records["fewshot"].append(row)
                    print(json.dumps(row), flush=True)

    def mean_std(values: list[float]) -> str:
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.3f} ± {spread:.3f}"

    summary = {}
    for key in sorted(records["align"][0]):
        if key.endswith("accuracy"):
            summary[key] = mean_std([r[key] for r in records["align"]])
    for shots in args.shots:
        for init in ("new", "text"):
            rows = [r["test_accuracy"] for r in records["fewshot"] if r["shots"] == shots and r["head_init"] == init]
            summary[f"fewshot_{shots}_{init}"] = mean_std(rows)
    records["summary"] = summary
    Path(args.output_file).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output_file).write_text(json.dumps(records, indent=2))
    for key, value in summary.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
