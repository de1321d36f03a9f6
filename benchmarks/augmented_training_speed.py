#!/usr/bin/env python
"""Benchmark: image fine-tuning steps/s with per-step augmentation against the same steps on ready tensors.

EfficientNet-Lite0 (the built-in, ImageNet weights) full fine-tuning on Fashion-MNIST at 112x112, batch 32, through
`TransferTrainer` as `recipes/finetune.py` builds it. Three variants of the same steps, in rotating order:
- `augmented`: what `--augmentation randaugment` trains on: each image decoded, random-resized-cropped, flipped,
  RandAugment-ed, processed and randomly erased in the DataLoader, with the recipe's default workers
  (`hf_transfer.cpu_processes.image_dataloader_workers`: none on CPU, where the step uses every core);
- `augmented_1_worker`: the same with one DataLoader worker (`--dataloader_num_workers 1`);
- `ready`: pixel tensors computed once beforehand with the evaluation transform (no decoding, no augmentation).
A pass is `--steps` optimizer steps from a fresh `Trainer` (worker start-up included, as every epoch pays it);
steps/s is steps over `train_runtime`; the ratio is of medians over passes.

    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/python benchmarks/augmented_training_speed.py   # ~5 min

Results go to `benchmarks/results/augmented_training_speed.json`; the last line is the ratio of steps/s, augmented /
ready (the goal: at least 0.8).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
from pathlib import Path

import datasets
import torch
from transformers import TrainingArguments

from _common import machine_info
from hf_transfer.augmentation import AugmentationArguments, create_image_augmentation
from hf_transfer.cpu_processes import image_dataloader_workers
from hf_transfer.data import DataArguments, label_names_of, load_transfer_dataset
from hf_transfer.finetuning import TransferTrainer
from hf_transfer.models import ModelArguments
from hf_transfer.outputs import write_json_atomic
from hf_transfer.processing import create_collator, preprocess_dataset
from hf_transfer.recipe import load_transfer_model
from hf_transfer.recipe.logs import setup_quiet_logging

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("augmented", "augmented_1_worker", "ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=12, help="Optimizer steps per pass.")
    parser.add_argument("--repeats", type=int, default=3, help="Passes of each variant.")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--output_file", default=str(ROOT / "benchmarks" / "results" / "augmented_training_speed.json"))
    args = parser.parse_args()
    setup_quiet_logging(logging.getLogger(__name__))
    datasets.disable_progress_bars()

    data_args = DataArguments(dataset_name="fashion_mnist", max_train_samples=args.steps * args.batch_size)
    raw = load_transfer_dataset(data_args)
    labels = label_names_of(raw, data_args)
    loaded = load_transfer_model(
        ModelArguments(model_name_or_path="efficientnet-lite0"), labels, "vision", image_size=112
    )
    processor, model = loaded.processor, loaded.model
    collator = create_collator(processor, "vision")
    preset = "randaugment"
    augmentation = create_image_augmentation(AugmentationArguments(augmentation=preset), preset, processor)
    augmented = preprocess_dataset(raw["train"], processor, "vision", augmentation=augmentation)
    evaluated = preprocess_dataset(raw["train"], processor, "vision")
    ready = [evaluated[i] for i in range(len(evaluated))]  # the evaluation transform, run once, outside the timing
    workers = image_dataloader_workers(on_gpu=torch.cuda.is_available())
    datasets_of = {"augmented": augmented, "augmented_1_worker": augmented, "ready": ready}
    workers_of = {"augmented": workers, "augmented_1_worker": 1, "ready": 0}

    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="hf_transfer-aug-speed-") as out:
        for repeat in range(args.repeats):
            order = VARIANTS[repeat % 3 :] + VARIANTS[: repeat % 3]
            for variant in order:
                training_args = TrainingArguments(
                    output_dir=out,
                    per_device_train_batch_size=args.batch_size,
                    max_steps=args.steps,
                    learning_rate=1e-4,
                    save_strategy="no",
                    report_to="none",
                    remove_unused_columns=False,
                    dataloader_num_workers=workers_of[variant],
                    disable_tqdm=True,
                    use_cpu=not torch.cuda.is_available(),
                )
                trainer = TransferTrainer(
                    model=model, args=training_args, train_dataset=datasets_of[variant], data_collator=collator
                )
                runtime = trainer.train().metrics["train_runtime"]
                rates[variant].append(args.steps / runtime)
                print(f"{variant}: {args.steps / runtime:.3f} steps/s ({runtime:.1f} s)", flush=True)

    medians = {v: statistics.median(r) for v, r in rates.items()}
    ratio = medians["augmented"] / medians["ready"]
    write_json_atomic(
        Path(args.output_file),
        {
            "machine": machine_info("timm"),
            "model": "efficientnet-lite0",
            "image_size": 112,
            "batch_size": args.batch_size,
            "steps_per_pass": args.steps,
            "augmentation": augmentation.description,
            "dataloader_workers": workers,
            "steps_per_second": rates,
            "median_steps_per_second": medians,
            "ratio_augmented_to_ready": ratio,
            "ratio_1_worker_to_ready": medians["augmented_1_worker"] / medians["ready"],
        },
    )
    print("| variant | steps/s per pass | median steps/s | ratio to ready |")
    print("|---|---|---|---|")
    for variant in VARIANTS:
        per_pass = ", ".join(f"{r:.3f}" for r in rates[variant])
        print(f"| {variant} | {per_pass} | {medians[variant]:.3f} | {medians[variant] / medians['ready']:.2f} |")
    print(f"augmented / ready steps/s: {ratio:.2f}")


if __name__ == "__main__":
    main()
