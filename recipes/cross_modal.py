#!/usr/bin/env python
"""Cross-modal fine-tuning: a text encoder's transformer body (MiniLM, BERT, RoBERTa, DistilBERT) classifies images
through a trained patch embedder (Lu et al. 2021, frozen pretrained transformers; Shen et al. 2023, ORCA), its body
frozen but for LayerNorms and position embeddings (`--body_tuning frozen`), with LoRA adapters (`lora`) or trained in
full (`full`); `--body_init random` trains the same architecture from random init, the control that measures what
language pretraining brings.

    accelerate launch recipes/cross_modal.py                      # built-in default: MiniLM on Fashion-MNIST, frozen
    accelerate launch recipes/cross_modal.py --body_init random --output_dir outputs/cross-modal-random
    python -c 'import hf_transfer.cross_modal; from transformers import pipeline;
        print(pipeline("image-classification", model="outputs/cross-modal-fashion_mnist")("shoe.png"))'

The output folder holds a `CrossModalForImageClassification` (its code copied next to its weights) and a stock
`ViTImageProcessor`; `trust_remote_code=True` loads it where hf_transfer is not installed.

Adapting it to your data: `--train_dir` (one sub-folder per class) or `--train_file` with `--image_column`; label
budgets with `--train_samples_per_class` (drawn with `--train_samples_seed`) or `--max_train_samples` (a
class-stratified subset).
"""

# `accelerate launch --cpu --num_processes N` runs this script once; that process only starts the N workers and
# waits, so it does so before the imports below, which each worker makes for itself.
from hf_transfer.cpu_processes import start_requested_cpu_processes

start_requested_cpu_processes()


import logging
import time
from pathlib import Path

from transformers import TrainingArguments

from hf_transfer.cross_modal import BODY_TUNINGS, CrossModalArguments
from hf_transfer.cross_modal.model import (
    NEW_MODULES,
    create_cross_modal_model,
    create_image_processor,
    merge_body_adapters,
    save_cross_modal_model,
)
from hf_transfer.data import DataArguments, data_source_name, infer_modality, label_names_of, load_transfer_dataset
from hf_transfer.errors import DataError
from hf_transfer.finetuning import LoraArguments, TransferTrainer
from hf_transfer.hub import HubArguments
from hf_transfer.metrics import create_compute_metrics
from hf_transfer.modalities import MODALITIES
from hf_transfer.models import ModelArguments, count_parameters
from hf_transfer.outputs import publish_directory
from hf_transfer.processing import create_collator, preprocess_dataset
from hf_transfer.recipe import finish_recipe, run_recipe, start_recipe, train_whole_run
from hf_transfer.run_record import RunRecord

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = str(Path(__file__).resolve().parent / "configs" / "cross_modal_fashion_mnist.yaml")


def main():
    # 1-3. Arguments (CLI flags, a YAML/JSON file + overriding flags, or nothing for the default job), logging on
    #      the main process, and the output folder locked, resuming a complete checkpoint of the same run.
    run = start_recipe(
        (ModelArguments, CrossModalArguments, DataArguments, LoraArguments, HubArguments, TrainingArguments),
        DEFAULT_CONFIG,
    )
    model_args, xmodal_args, data_args, lora_args, hub_args, training_args = run.arguments
    tuning = BODY_TUNINGS.get(xmodal_args.body_tuning)

    # 4. Data: `image` and `label` (one class per row), with train / validation (/ test) splits; the label budget is
    #    --max_train_samples (class-stratified).
    with training_args.main_process_first(desc="loading data"):
        raw_datasets = load_transfer_dataset(data_args, cache_dir=model_args.cache_dir, task="single_label")
    if MODALITIES.get(infer_modality(raw_datasets)) is not MODALITIES.get("vision"):
        raise DataError(
            f"cross-modal fine-tuning classifies images; {data_source_name(data_args)} is "
            f"{infer_modality(raw_datasets)} data. Pick an image set (fashion_mnist, digits, --train_dir)."
        )
    label_names = label_names_of(raw_datasets, data_args)
    logger.info(f"Labels {label_names}; splits: { {k: len(v) for k, v in raw_datasets.items()} }")

    # 5. The model: the text encoder's body (pretrained or at random init) between a new patch embedder + [CLS] and a
    #    new classifier; the body tuned as --body_tuning says. The processor: resize, RGB, normalise.
    with training_args.main_process_first(desc="loading the text encoder"):
        model, body_path = create_cross_modal_model(xmodal_args, label_names, model_args)
    tuning.prepare(model, lora_args)
    processor = create_image_processor(xmodal_args)

    # 6. Preprocessing: images transformed on the fly (the `image` column stays for the transform).
    processed = preprocess_dataset(raw_datasets, processor, "vision")
    training_args.remove_unused_columns = False

    # 7. Training: Trainer (accelerate, DDP, checkpoints, resume); the new parts at --head_learning_rate.
    trainable, total = count_parameters(model)
    logger.info(f"Trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)")
    trainer = TransferTrainer(
        model=model,
        args=training_args,
        train_dataset=processed["train"],
        eval_dataset=processed.get("validation"),
        processing_class=processor,
        data_collator=create_collator(processor, "vision"),
        compute_metrics=create_compute_metrics("single_label", label_names=label_names),
        head_learning_rate=xmodal_args.head_learning_rate,
        head_modules=NEW_MODULES,
    )
    start = time.time()
    train_metrics = train_whole_run(trainer, run.checkpoint)
    merge_body_adapters(trainer.model)  # LoRA folded in: what is scored below is what is saved
    publish_directory(training_args.output_dir, lambda folder: save_cross_modal_model(trainer.model, processor, folder))
    trainer.save_state()

    # 8. Results (all_results.json), model card, and the Hub push: main process only.
    metrics = {
        "method": f"cross_modal ({xmodal_args.body_tuning} body, {xmodal_args.body_init} init)",
        "body_tuning": xmodal_args.body_tuning,
        "body_init": xmodal_args.body_init,
        "base_model": model_args.model_name_or_path,
        "train_samples": len(raw_datasets["train"]),
        "patches": xmodal_args.num_tokens - 1,
        "trainable_params": trainable,
        "total_params": total,
        "num_processes": training_args.world_size,
        **train_metrics,
        "trained": trainer.state.global_step > 0,
    }
    if "validation" in processed:
        metrics.update(trainer.evaluate(metric_key_prefix="eval"))
    if "test" in processed:
        metrics.update(trainer.predict(processed["test"], metric_key_prefix="test").metrics)
    metrics["wall_time"] = time.time() - start
    finish_recipe(
        run,
        metrics,
        RunRecord(
            recipe="cross_modal",
            base_model=model_args.model_name_or_path,
            base_model_path=body_path,
            modality="vision",
            method=metrics["method"],
            datasets=[data_source_name(data_args)],
            label_names=list(label_names),
            arguments=(model_args, xmodal_args, data_args, lora_args, training_args),
            world_size=training_args.world_size,
            saved_as="cross_modal",
            task="single_label",
        ),
    )


if __name__ == "__main__":
    run_recipe(main)
