#!/usr/bin/env python
"""Contrastive pretraining of a backbone on unlabelled (or weakly paired) data, for transfer afterwards.

Views per sample (`--views`): SimCLR augmentations of images, SimCSE dropout (the same text twice), or
a pair column. Losses (`--contrastive_loss`): `ntxent`, `in_batch` (pairs), `supcon` (uses labels).
The output folder holds the backbone alone (projection head dropped), loadable with `AutoModel` and,
for text, `SentenceTransformer`; transfer it with the fine-tuning recipe:

    accelerate launch recipes/contrastive_pretrain.py recipes/configs/contrastive_simclr_fashion_mnist.yaml
    accelerate launch recipes/finetune.py --model_name_or_path outputs/vit-fashion_mnist-simclr \
        --dataset_name fashion_mnist --strategy linear_probe --output_dir outputs/vit-simclr-probe
    accelerate launch recipes/contrastive_pretrain.py recipes/configs/contrastive_simcse_drug_reviews.yaml
    accelerate launch --num_processes 2 --cpu recipes/contrastive_pretrain.py \
        recipes/configs/contrastive_simcse_drug_reviews.yaml      # negatives gathered from both processes

Adapting it to your data: an unlabelled corpus is `--train_file corpus.csv --text_column sentence`;
pairs add `--pair_column paraphrase` (with `--contrastive_loss in_batch`); images come from
`--train_dir`. Labels are read only by `--contrastive_loss supcon`.
"""

# `accelerate launch --cpu --num_processes N` runs this script once; that process only starts the N workers and
# waits, so it does so before the imports below, which each worker makes for itself.
from hf_transfer.cpu_processes import start_requested_cpu_processes

start_requested_cpu_processes()


import logging
import time
from pathlib import Path

from transformers import TrainingArguments

from hf_transfer.contrastive import (
    ContrastiveArguments,
    ContrastiveModel,
    ContrastiveTrainer,
    create_backbone_from_config,
    create_contrastive_collator,
    create_contrastive_loss,
    linear_evaluation,
    load_contrastive_dataset,
)
from hf_transfer.data import DataArguments, data_source_name, infer_modality
from hf_transfer.hub import HubArguments
from hf_transfer.modalities import MODALITIES
from hf_transfer.models import ModelArguments, count_parameters, create_backbone
from hf_transfer.outputs import publish_directory
from hf_transfer.processing import cap_max_seq_length, set_image_size
from hf_transfer.recipe import (
    check_modality_match,
    finish_recipe,
    refuse_under_sharding,
    run_recipe,
    start_recipe,
    train_whole_run,
)
from hf_transfer.run_record import RunRecord

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = str(Path(__file__).resolve().parent / "configs" / "contrastive_simcse_drug_reviews.yaml")


def main():
    # 1-3. Arguments (CLI flags, a YAML/JSON file + overriding flags, or nothing for the default job), logging on
    #      the main process, and the output folder locked, resuming a complete checkpoint of the same run. The Hub
    #      token is kept out of the saved arguments: the push happens once, at the end, with the model card.
    run = start_recipe(
        (ModelArguments, DataArguments, ContrastiveArguments, HubArguments, TrainingArguments), DEFAULT_CONFIG
    )
    model_args, data_args, contrastive_args, hub_args, training_args = run.arguments
    if contrastive_args.gradient_cache:
        refuse_under_sharding(
            training_args,
            "--gradient_cache",
            "it runs each mini-batch's backward on its own with cached embedding gradients, which FSDP's and ZeRO's "
            "per-backward gradient reduction does not expect (not tested there)",
            "Shard without it (a smaller --per_device_train_batch_size), or keep GradCache under DDP.",
        )

    # 4. Data: `text` (+ `positive` for pairs) or `image`; `label` when the source has one (SupCon only reads it).
    with training_args.main_process_first(desc="loading data"):
        raw_datasets = load_contrastive_dataset(data_args, contrastive_args, cache_dir=model_args.cache_dir)
    logger.info(f"Splits: { {k: len(v) for k, v in raw_datasets.items()} }")

    # 5. Backbone (AutoModel + processor), pooled as it will be transferred, and the projection head.
    with training_args.main_process_first(desc="loading the backbone"):
        if contrastive_args.model_type:  # from scratch: random weights from a config
            backbone = create_backbone_from_config(
                contrastive_args.model_type,
                contrastive_args.config_overrides,
                contrastive_args.pooling,
                tokenizer_source=model_args.model_name_or_path,
                model_args=model_args,
            )
        else:
            backbone = create_backbone(model_args.model_name_or_path, contrastive_args.pooling, model_args)
    modality = backbone.modality
    check_modality_match(model_args.model_name_or_path, modality, infer_modality(raw_datasets))
    modality_entry = MODALITIES.get(modality)
    if modality_entry.uses_max_seq_length:
        contrastive_args.max_seq_length = cap_max_seq_length(
            contrastive_args.max_seq_length, backbone.model, backbone.processor
        )
    if modality_entry.uses_image_size and contrastive_args.image_size:
        backbone.processor = set_image_size(backbone.processor, backbone.model, contrastive_args.image_size)
    model = ContrastiveModel(backbone, contrastive_args.projection_dim, contrastive_args.projection_hidden_dim)
    loss = create_contrastive_loss(contrastive_args)

    # Linear evaluation of the untrained embedding (labelled data only), the "before" of the transfer gain.
    labelled = "label" in raw_datasets["train"].column_names and "validation" in raw_datasets
    run_linear_eval = contrastive_args.linear_eval and labelled and training_args.process_index == 0
    if contrastive_args.linear_eval and not labelled:
        logger.warning("--linear_eval needs labelled train and validation splits; skipping it.")
    linear_eval_before = {}
    if run_linear_eval:
        linear_eval_before = linear_evaluation(backbone, raw_datasets, contrastive_args.max_seq_length)

    # 6. Views: two per sample, made in the collator (augmentations, dropout duplicates, or pairs).
    data_collator = create_contrastive_collator(backbone.processor, modality, contrastive_args)
    eval_dataset = raw_datasets.get("validation") if training_args.eval_strategy != "no" else None

    # 7. Training: Trainer (accelerate, DDP, checkpoints, resume) with the contrastive loss.
    trainable, total = count_parameters(model)
    logger.info(f"Trainable parameters: {trainable:,} of {total:,} (projection head and loss included)")
    trainer = ContrastiveTrainer(
        model=model,
        args=training_args,
        loss=loss,
        train_dataset=raw_datasets["train"],
        eval_dataset=eval_dataset,
        data_collator=data_collator,
        processing_class=backbone.processor,
        gradient_cache_mini_batch_size=(
            contrastive_args.gradient_cache_mini_batch_size if contrastive_args.gradient_cache else None
        ),
        max_seq_length=contrastive_args.max_seq_length,
        save_sentence_transformers=contrastive_args.save_sentence_transformers,
    )
    start = time.time()
    train_metrics = train_whole_run(trainer, run.checkpoint)  # train_loss / train_runtime over all resumes
    # The backbone alone (no projection head): AutoModel / SentenceTransformer folder.
    publish_directory(training_args.output_dir, trainer.save_model)
    trainer.save_state()

    # 8. Results (all_results.json), model card, and the Hub push: main process only.
    base_model = (
        f"{contrastive_args.model_type} (random init)" if contrastive_args.model_type else model_args.model_name_or_path
    )
    metrics = {
        "method": f"contrastive_{contrastive_args.contrastive_loss}",
        "views": contrastive_args.resolve_views(modality),
        "modality": modality,
        "train_samples": len(raw_datasets["train"]),
        "temperature": loss.temperature.value,
        "pooling": backbone.pooling,
        "projection_dim": contrastive_args.projection_dim,
        "gradient_cache": contrastive_args.gradient_cache,
        "trainable_params": count_parameters(backbone.model)[0],
        "total_params": count_parameters(backbone.model)[1],
        "base_model": base_model,
        "num_processes": training_args.world_size,
        "global_batch_size": training_args.per_device_train_batch_size * training_args.world_size,
        **train_metrics,
        "trained": trainer.state.global_step > 0,
    }
    if eval_dataset is not None:
        metrics.update(trainer.evaluate(metric_key_prefix="eval"))
    if run_linear_eval:
        after = linear_evaluation(backbone, raw_datasets, contrastive_args.max_seq_length)
        metrics.update({f"linear_eval_before_{k}": v for k, v in linear_eval_before.items()})
        metrics.update({f"linear_eval_{k}": v for k, v in after.items()})
    metrics["wall_time"] = time.time() - start
    label_feature = raw_datasets["train"].features.get("label")
    finish_recipe(
        run,
        metrics,
        RunRecord(
            recipe="contrastive_pretrain",
            base_model=base_model,
            base_model_path=backbone.model.name_or_path or base_model,
            modality=modality,
            method=metrics["method"],
            datasets=[data_source_name(data_args)],
            label_names=list(getattr(label_feature, "names", []) or []),
            arguments=(model_args, data_args, contrastive_args, training_args),
            world_size=training_args.world_size,
            saved_as="backbone",
            pooling=backbone.pooling,
            sentence_transformers=modality_entry.sentence_transformers and contrastive_args.save_sentence_transformers,
            loss={"name": type(loss).__name__, "config": loss.get_config_dict(), "citation": loss.citation},
        ),
    )


if __name__ == "__main__":
    run_recipe(main)
