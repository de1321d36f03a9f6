#!/usr/bin/env python
"""Adapt a classifier from a labelled source domain to an unlabelled target domain (same task, new data).

Methods (`--method`): `source_only` (train on the source, the baseline), `dann` (domain-adversarial
training), `coral` (covariance alignment), `mmd` (multi-kernel MMD, DAN), `mcc` (minimum class confusion on the
target predictions), `cdan` (conditional adversarial, CDAN+E), and `target_oracle` (train on the labelled target
train split: the upper bound). `--target_self_training true` adds pseudo-labelled target rows on top of any method
but the oracle. Target labels are used only to evaluate (and by the oracle).

    accelerate launch recipes/domain_adapt.py                      # built-in default: DANN, MiniLM, tweets -> drug reviews
    accelerate launch recipes/domain_adapt.py recipes/configs/domain_adapt_vision.yaml --method coral
    accelerate launch recipes/domain_adapt.py recipes/configs/domain_adapt_vision.yaml --method mcc \
        --alignment_schedule constant --target_self_training true --self_training_start 0.5
    accelerate launch recipes/domain_adapt.py --model_name_or_path minilm --source_dataset_name tweet_sentiment \
        --target_dataset_name drug_reviews --method mmd --strategy lora --output_dir outputs/tweets-to-drugs-mmd
    accelerate launch --num_processes 2 --cpu recipes/domain_adapt.py recipes/configs/domain_adapt_text.yaml

Adapting it to your data: every data flag of recipes/finetune.py exists once per domain, prefixed
(`--source_train_file`, `--target_train_dir`, `--target_text_column`, ...). Both domains need the same
classes; the target's `train` split is the unlabelled pool, its `validation` / `test` splits are only scored.
"""

# `accelerate launch --cpu --num_processes N` runs this script once; that process only starts the N workers and
# waits, so it does so before the imports below, which each worker makes for itself.
from hf_transfer.cpu_processes import start_requested_cpu_processes

start_requested_cpu_processes()


import logging
from pathlib import Path

import torch
from accelerate import PartialState
from transformers import TrainingArguments

from hf_transfer.adaptation import (
    MIN_A_DISTANCE_ROWS,
    DomainAdaptationArguments,
    DomainAdaptationTrainer,
    DomainPairCollator,
    DomainPairDataset,
    SourceDataArguments,
    TargetDataArguments,
    align_domains,
    check_transfer_strategy,
    compute_proxy_a_distance,
    create_alignment_loss,
    held_out_split,
    load_domain_dataset,
)
from hf_transfer.data import data_source_name, infer_modality
from hf_transfer.errors import ConfigError
from hf_transfer.finetuning import LoraArguments, TransferArguments, create_lora_model
from hf_transfer.hub import HubArguments
from hf_transfer.metrics import create_compute_metrics
from hf_transfer.modalities import MODALITIES
from hf_transfer.models import ModelArguments, count_parameters, get_classifier
from hf_transfer.probing import locate_probe_features
from hf_transfer.processing import cap_max_seq_length, create_collator, preprocess_dataset, sample_inputs
from hf_transfer.pseudo_labels import ClassThresholds
from hf_transfer.recipe import (
    classifier_pooling,
    finish_recipe,
    load_transfer_model,
    publish_merged_lora,
    publish_trained_model,
    run_recipe,
    saved_format_info,
    start_recipe,
    train_whole_run,
)
from hf_transfer.run_record import RunRecord

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = str(Path(__file__).resolve().parent / "configs" / "domain_adapt_text.yaml")


def main():
    # 1-3. Arguments (CLI flags, a YAML/JSON file + overriding flags, or nothing for the default job), logging on
    #      the main process, and the output folder locked, resuming a complete checkpoint of the same run. The Hub
    #      token is kept out of the saved arguments: the push happens once, at the end, with the model card.
    run = start_recipe(
        (
            ModelArguments,
            SourceDataArguments,
            TargetDataArguments,
            DomainAdaptationArguments,
            TransferArguments,
            LoraArguments,
            HubArguments,
            TrainingArguments,
        ),
        DEFAULT_CONFIG,
        check=lambda model_args, source_args, target_args, da_args, transfer_args, *rest: check_transfer_strategy(
            transfer_args.strategy, transfer_args.task
        ),
    )
    model_args, source_args, target_args, da_args, transfer_args, lora_args, hub_args, training_args = run.arguments

    # 4. Data: two domains with the same classes; the target's train split is the unlabelled pool.
    with training_args.main_process_first(desc="loading data"):
        source = load_domain_dataset(source_args.to_data_arguments(), model_args.cache_dir, prefix="source")
        target = load_domain_dataset(target_args.to_data_arguments(), model_args.cache_dir, prefix="target")
        target = align_domains(source, target)
    label_names = source["train"].features["label"].names
    logger.info(
        f"{len(label_names)} labels: {label_names}; source splits: { {k: len(v) for k, v in source.items()} }, "
        f"target splits: { {k: len(v) for k, v in target.items()} }"
    )

    # 5. Model and processor: a stock AutoModelFor{Sequence,Image}Classification with a new head.
    loaded = load_transfer_model(
        model_args,
        label_names,
        infer_modality(source),
        image_size=transfer_args.image_size,
        main_process_first=training_args.main_process_first,
        pooling=transfer_args.resolve_pooling(aligns_features=True),
    )
    model_path, modality, processor, model = loaded.path, loaded.modality, loaded.processor, loaded.model
    modality_entry = MODALITIES.get(modality)
    if modality_entry.uses_max_seq_length:
        transfer_args.max_seq_length = cap_max_seq_length(transfer_args.max_seq_length, model, processor)

    # 6. Preprocessing: tokenize text once (cached), transform images on the fly.
    with training_args.main_process_first(desc="preprocessing"):
        processed_source = preprocess_dataset(source, processor, modality, transfer_args.max_seq_length, "Source: ")
        processed_target = preprocess_dataset(target, processor, modality, transfer_args.max_seq_length, "Target: ")
        # Held-out rows of each domain (validation + test), for the A-distance before and after training.
        held_out = {
            domain: preprocess_dataset(
                held_out_split(raw), processor, modality, transfer_args.max_seq_length, f"Held-out {domain}: "
            )
            for domain, raw in (("source", source), ("target", target))
        }
    data_collator = create_collator(processor, modality)
    if modality_entry.transformed_on_read:
        training_args.remove_unused_columns = False  # the transform needs the `image` column

    metrics = {
        "method": da_args.method,
        "strategy": transfer_args.strategy,
        "modality": modality,
        "pooling": classifier_pooling(model),
        "source_train_samples": len(processed_source["train"]),
        "target_train_samples": len(processed_target["train"]),
    }
    is_main = PartialState().is_main_process
    model.to(training_args.device)
    sample = sample_inputs(processed_source["train"], data_collator, model.device)
    # The A-distance reads what reaches the first new head layer: pretrained weights alone compute it.
    a_distance_layer = None
    held_out_rows = min(len(held_out["source"]), len(held_out["target"]))
    if da_args.compute_a_distance and held_out_rows < MIN_A_DISTANCE_ROWS:
        logger.warning(
            f"Skipping the proxy A-distance: it needs {MIN_A_DISTANCE_ROWS} held-out rows per domain "
            f"(validation + test), and one domain has {held_out_rows}."
        )
    elif da_args.compute_a_distance:
        try:
            a_distance_layer = locate_probe_features(model, loaded.new_modules, sample).feature_module
        except ConfigError as err:
            logger.warning(f"Skipping the proxy A-distance: {err}")

    def a_distance(of_model) -> float:
        """The proxy A-distance between the held-out rows of both domains, as `of_model` features them."""
        return compute_proxy_a_distance(
            of_model,
            held_out["source"],
            held_out["target"],
            data_collator,
            max_samples=da_args.a_distance_max_samples,
            batch_size=transfer_args.feature_batch_size,
            seed=training_args.seed,
            module_name=a_distance_layer,
        ).value

    if a_distance_layer is not None and is_main:
        metrics["a_distance_before"] = a_distance(model)

    # 7. Training data per method: source pairs with unlabelled target rows (alignment or self-training), or one
    #    labelled domain alone.
    trains_on = da_args.method_entry.trains_on
    if da_args.uses_target_rows:
        train_dataset = DomainPairDataset(processed_source["train"], processed_target["train"], seed=da_args.pair_seed)
    else:
        train_dataset = (processed_target if trains_on == "target" else processed_source)["train"]
    alignment_loss = create_alignment_loss(
        da_args.method, get_classifier(model).in_features, len(label_names), **da_args.alignment_loss_options()
    )
    self_training = None
    if da_args.target_self_training:
        class_prior = None  # uniform
        if da_args.self_training_class_prior == "source":
            class_prior = (
                torch.bincount(torch.tensor(source["train"]["label"]), minlength=len(label_names)).float().clamp_min(1)
            )
        self_training = ClassThresholds(
            num_classes=len(label_names),
            num_rows=len(processed_target["train"]),
            threshold=da_args.self_training_threshold,
            min_threshold=da_args.self_training_min_threshold,
            distribution_alignment=da_args.self_training_distribution_alignment,
            class_quota=da_args.self_training_class_quota,
            class_prior=class_prior,
        )

    if transfer_args.trains_lora:
        model = create_lora_model(model, lora_args, new_modules=loaded.new_modules, sample_inputs=sample)
        training_args.label_names = ["labels"]  # peft hides the forward signature Trainer reads them from
    trainable, total = count_parameters(model)
    logger.info(f"Trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)")

    # 8. Trainer: task loss on source rows + alignment loss on the features the head sees. The trainer holds the
    #    model and the alignment loss as one module, so the engine (DDP, FSDP, DeepSpeed) syncs the discriminator.
    trainer = DomainAdaptationTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=processed_source["validation"],  # no target labels during training
        processing_class=processor,
        data_collator=DomainPairCollator(data_collator),
        compute_metrics=create_compute_metrics(),
        head_learning_rate=transfer_args.head_learning_rate,
        layer_decay=transfer_args.layer_decay,
        head_modules=loaded.head_modules,
        alignment_loss=alignment_loss,
        alignment_weight=da_args.alignment_weight,
        alignment_schedule=da_args.alignment_schedule,
        schedule_gamma=da_args.schedule_gamma,
        alignment_learning_rate=da_args.alignment_learning_rate,
        self_training=self_training,
        self_training_weight=da_args.self_training_weight,
        self_training_start=da_args.self_training_start,
    )
    metrics.update(train_whole_run(trainer, run.checkpoint))  # train_loss / train_runtime over all resumes
    publish_trained_model(trainer, processor, training_args.output_dir, max_seq_length=transfer_args.max_seq_length)
    trainer.save_state()
    metrics["trained"] = trainer.state.global_step > 0

    # 9. Evaluation on both domains (target labels are read only here).
    for domain, processed in (("source", processed_source), ("target", processed_target)):
        for split, name in (("validation", "eval"), ("test", "test")):
            if split in processed:
                metrics.update(trainer.evaluate(processed[split], metric_key_prefix=f"{domain}_{name}"))
    if a_distance_layer is not None and is_main:
        metrics["a_distance_after"] = a_distance(trainer.task_model)
    metrics["trainable_params"], metrics["total_params"] = trainable, total
    if self_training is not None:
        metrics.update(trainer.pseudo_label_summary())
        # A diagnostic only: the pseudo-labels' accuracy against target train labels that training never read.
        if "label" in target["train"].column_names:
            pseudo = trainer.pseudo_labels()
            kept = pseudo >= 0
            if kept.any():
                truth = torch.tensor(target["train"]["label"], dtype=torch.long)
                metrics["target_pseudo_label_accuracy"] = float((pseudo[kept] == truth[kept]).float().mean())
    if alignment_loss is not None:
        metrics["alignment_loss_config"] = {"name": type(alignment_loss).__name__, **alignment_loss.get_config_dict()}
        metrics["alignment_params"] = sum(p.numel() for p in alignment_loss.parameters())

    if transfer_args.merge_lora and training_args.should_save:
        publish_merged_lora(trainer.task_model, processor, training_args.output_dir)

    # 10. Results (all_results.json), model card, and the Hub push: main process only.
    source_name = data_source_name(source_args.to_data_arguments())
    target_name = data_source_name(target_args.to_data_arguments())
    metrics["base_model"] = model_args.model_name_or_path
    metrics["source_dataset"], metrics["target_dataset"] = source_name, target_name
    metrics["num_processes"] = training_args.world_size
    finish_recipe(
        run,
        metrics,
        RunRecord(
            recipe="domain_adapt",
            base_model=model_args.model_name_or_path,
            base_model_path=model_path,
            modality=modality,
            method=f"{da_args.method}{' + target self-training' if self_training else ''} ({transfer_args.strategy})",
            datasets=[source_name, target_name],
            label_names=label_names,
            arguments=(model_args, source_args, target_args, da_args, transfer_args, lora_args, training_args),
            world_size=training_args.world_size,
            domains={"source": source_name, "target": target_name},
            **saved_format_info(model),
        ),
        push_merged=transfer_args.push_merged,
    )


if __name__ == "__main__":
    run_recipe(main)
