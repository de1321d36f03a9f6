#!/usr/bin/env python
"""Align an image backbone with a text backbone on (image, caption) pairs: LiT (the image tower frozen), LoRA on it,
or CLIP-style full training, with the toolkit's symmetric in-batch contrastive loss.

The output folder holds a stock `VisionTextDualEncoderModel` and its `VisionTextDualEncoderProcessor`, which load and
run without this toolkit:

    accelerate launch recipes/align.py recipes/configs/align_fashion_mnist.yaml
    python -c 'from transformers import pipeline; clf = pipeline("zero-shot-image-classification",
        model="outputs/align-fashion_mnist"); print(clf("shoe.png", candidate_labels=["sandal", "bag"],
        hypothesis_template="a photo of a {}."))'

Adapting it to your data: a csv of image paths and captions is `--train_file pairs.csv --image_column path
--caption_column caption` (a label column, when there is one, feeds the zero-shot evaluation); a labelled set
(`--dataset_name`, `--train_dir`, a csv with labels) gets captions from its class names through `--caption_template`.
`--held_out_classes A B` keeps classes out of training to measure zero-shot transfer to them.
"""

# `accelerate launch --cpu --num_processes N` runs this script once; that process only starts the N workers and
# waits, so it does so before the imports below, which each worker makes for itself.
from hf_transfer.cpu_processes import start_requested_cpu_processes

start_requested_cpu_processes()


import functools
import logging
import time
from pathlib import Path

from transformers import TrainingArguments

from hf_transfer.alignment import (
    AlignmentArguments,
    AlignmentModel,
    AlignmentTrainer,
    PairCollator,
    create_dual_encoder,
    load_alignment_dataset,
    zero_shot_scores,
)
from hf_transfer.contrastive.losses import InBatchNegativesLoss
from hf_transfer.data import DataArguments, data_source_name
from hf_transfer.finetuning import LoraArguments
from hf_transfer.hub import HubArguments
from hf_transfer.models import count_parameters
from hf_transfer.outputs import publish_directory
from hf_transfer.recipe import finish_recipe, run_recipe, start_recipe, train_whole_run
from hf_transfer.run_record import RunRecord

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = str(Path(__file__).resolve().parent / "configs" / "align_fashion_mnist.yaml")


def main():
    # 1-3. Arguments (CLI flags, a YAML/JSON file + overriding flags, or nothing for the default job), logging on
    #      the main process, and the output folder locked, resuming a complete checkpoint of the same run.
    run = start_recipe(
        (AlignmentArguments, DataArguments, LoraArguments, HubArguments, TrainingArguments), DEFAULT_CONFIG
    )
    align_args, data_args, lora_args, hub_args, training_args = run.arguments

    # 4. Data: `image`, `caption` (given, or made from the class names), and `label` when the source has one; the
    #    held-out classes leave train and validation.
    with training_args.main_process_first(desc="loading data"):
        data = load_alignment_dataset(data_args, align_args)
    splits = data.splits
    logger.info(f"Splits: { {k: len(v) for k, v in splits.items()} }")

    # 5. The dual encoder (two pretrained towers, new projections) and its processor; the image tower tuned as
    #    --vision_tuning says; the loss: image -> caption and caption -> image InfoNCE (CLIP's).
    with training_args.main_process_first(desc="loading the towers"):
        dual_encoder, processor = create_dual_encoder(align_args)
    loss = InBatchNegativesLoss(
        temperature=align_args.temperature,
        symmetric=True,
        learnable_temperature=align_args.learnable_temperature,
        min_temperature=align_args.min_temperature,
    )
    model = AlignmentModel(dual_encoder, align_args.vision_tuning, loss, lora_args)

    # Zero-shot accuracy before training (the projections are random: chance level), the "before" of the transfer.
    eval_split = "test" if "test" in splits else "validation"
    score_split = "test" if eval_split == "test" else "eval"
    run_zero_shot = align_args.zero_shot_eval and bool(data.class_names) and training_args.process_index == 0
    score_zero_shot = functools.partial(
        zero_shot_scores,
        processor=processor,
        dataset=splits[eval_split],
        names=data.class_names,
        held_out=data.held_out,
        template=align_args.caption_template,
        multi_label=data.multi_label,
        split=score_split,
    )
    before = score_zero_shot(model.dual_encoder, prefix="zero_shot_before") if run_zero_shot else {}

    # 6-7. Training: Trainer (accelerate, DDP, checkpoints, resume) with the contrastive loss.
    trainable, total = count_parameters(model)
    logger.info(f"Trainable parameters: {trainable:,} of {total:,}")
    eval_dataset = splits.get("validation") if training_args.eval_strategy != "no" else None
    trainer = AlignmentTrainer(
        model=model,
        args=training_args,
        processor=processor,
        train_dataset=splits["train"],
        eval_dataset=eval_dataset,
        data_collator=PairCollator(processor, align_args.max_seq_length),
    )
    start = time.time()
    train_metrics = train_whole_run(trainer, run.checkpoint)
    publish_directory(training_args.output_dir, trainer.save_model)  # the stock dual encoder + processor
    trainer.save_state()

    # 8. Results (all_results.json), model card, and the Hub push: main process only.
    metrics = {
        "method": f"align ({align_args.vision_tuning} image tower)",
        "vision_model": align_args.vision_model_name_or_path,
        "text_model": align_args.text_model_name_or_path,
        "train_samples": len(splits["train"]),
        "held_out_classes": [data.class_names[i] for i in data.held_out],
        "caption_template": align_args.caption_template,
        "captions": "given" if align_args.caption_column else "class names",
        "temperature": loss.temperature.value,
        "projection_dim": align_args.projection_dim,
        "trainable_params": trainable,
        "total_params": total,
        "num_processes": training_args.world_size,
        **train_metrics,
        "trained": trainer.state.global_step > 0,
    }
    if eval_dataset is not None:
        metrics.update(trainer.evaluate(metric_key_prefix="eval"))
    if run_zero_shot:
        metrics.update(before)
        metrics.update(score_zero_shot(model.stock_model()))  # the model as saved
    metrics["wall_time"] = time.time() - start
    finish_recipe(
        run,
        metrics,
        RunRecord(
            recipe="align",
            base_model=f"{align_args.vision_model_name_or_path} + {align_args.text_model_name_or_path}",
            base_model_path=align_args.vision_model_name_or_path,
            modality="vision",
            method=metrics["method"],
            datasets=[data_source_name(data_args)],
            label_names=list(data.class_names),
            arguments=(align_args, data_args, lora_args, training_args),
            world_size=training_args.world_size,
            saved_as="dual_encoder",
            task="multi_label" if data.multi_label else "single_label",
            loss={"name": type(loss).__name__, "config": loss.get_config_dict(), "citation": loss.citation},
        ),
    )


if __name__ == "__main__":
    run_recipe(main)
