#!/usr/bin/env python
"""Transfer a pretrained backbone to a labelled task, text or vision: one class per row, several classes per row
(multi-label), or a number per row (regression).

Strategies (`--strategy`): `linear_probe` (cached frozen features + logistic regression), `full`
fine-tuning, `lora` (peft), `lp_ft` (probe, then fine-tune from the probe's head), and `contrastive_probe`
(SetFit-style pair training of the backbone, then the probe). `--hp_search N` first chooses the fine-tuning stage's
learning rate, epochs, warmup, weight decay (and LoRA rank) with N optuna trials.

    accelerate launch recipes/finetune.py                          # built-in default: linear probe, MiniLM, tweets
    accelerate launch recipes/finetune.py recipes/configs/vision_linear_probe.yaml
    accelerate launch recipes/finetune.py --model_name_or_path minilm --dataset_name bbc_news \
        --strategy full --output_dir outputs/bbc-full
    accelerate launch --num_processes 2 --cpu recipes/finetune.py recipes/configs/text_full.yaml

Adapting it to your data: pass `--train_file`/`--validation_file` (csv, json, parquet) or
`--train_dir`/`--validation_dir` (image folders) and name the columns with `--text_column`,
`--image_column`, `--label_column`. The places to change for other tasks are marked below.
"""

# `accelerate launch --cpu --num_processes N` runs this script once; that process only starts the N workers and
# waits, so it does so before the imports below, which each worker makes for itself.
from hf_transfer.cpu_processes import start_requested_cpu_processes

start_requested_cpu_processes()


import copy
import logging
import time
from pathlib import Path

from transformers.trainer_utils import IntervalStrategy

from hf_transfer.augmentation import (
    ModelEmaCallback,
    create_batch_mixer,
    create_image_augmentation,
)
from hf_transfer.cpu_processes import image_dataloader_workers
from hf_transfer.data import (
    carve_split,
    data_source_name,
    infer_modality,
    infer_task,
    label_names_of,
    load_transfer_dataset,
)
from hf_transfer.finetuning import (
    FINETUNE_METHODS,
    TransferTrainer,
    create_lora_model,
)
from hf_transfer.finetuning.recipe_arguments import finetune_argument_classes
from hf_transfer.finetuning.search import choose_hyperparameters
from hf_transfer.finetuning.targets import TargetScale, fold_target_scale, standardize_target_head
from hf_transfer.finetuning.validation import merge_validation_into_train, plan_validation
from hf_transfer.metrics import choose_decision_thresholds, create_compute_metrics
from hf_transfer.modalities import MODALITIES
from hf_transfer.models import count_parameters, model_fingerprint
from hf_transfer.models.thresholds import set_decision_thresholds
from hf_transfer.pairs import row_label_tensor, train_on_pairs
from hf_transfer.probing import DEFAULT_L2_GRID, FeatureCache, locate_probe_features, probe_classification_model
from hf_transfer.processing import (
    cap_max_seq_length,
    create_collator,
    describe_preprocessing,
    preprocess_dataset,
    sample_inputs,
    sentence_windows,
    window_counts,
)
from hf_transfer.recipe import (
    classifier_pooling,
    finish_recipe,
    load_transfer_model,
    publish_classifier,
    publish_merged_lora,
    publish_trained_model,
    refuse_under_sharding,
    run_recipe,
    saved_format_info,
    start_recipe,
    train_whole_run,
)
from hf_transfer.run_record import RunRecord
from hf_transfer.semi_supervised import (
    SEMI_SUPERVISED_METHODS,
    fixmatch_arguments,
    load_unlabelled_pool,
    pool_views,
)
from hf_transfer.tasks import TASKS

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = str(Path(__file__).resolve().parent / "configs" / "default.yaml")


def main():
    # 1-3. Arguments (CLI flags, a YAML/JSON file + overriding flags, or nothing for the default job), logging on
    #      the main process, and the output folder locked, resuming a complete checkpoint of the same run. The Hub
    #      token is kept out of the saved arguments: the push happens once, at the end, with the model card.
    run = start_recipe(
        finetune_argument_classes(),  # the dataclasses unpacked below, in this order
        DEFAULT_CONFIG,
        # --hp_search needs a fine-tuning stage and one process (rest[-1]: TrainingArguments), checked before the data,
        # and no unlabelled pool (rest[1]: SemiSupervisedArguments)
        check=lambda model_args, data_args, transfer_args, lora_args, search_args, *rest: (
            search_args.check_run(transfer_args.strategy_entry, rest[-1].world_size),
            rest[1].check_search(search_args.hp_search),
        ),
        resumes=lambda model_args, data_args, transfer_args, *rest: transfer_args.strategy_entry.finetunes,
    )
    (
        model_args,
        data_args,
        transfer_args,
        lora_args,
        search_args,
        pair_args,
        semi_args,
        augmentation_args,
        head_init_args,
        hub_args,
        training_args,
    ) = run.arguments
    strategy = transfer_args.strategy_entry  # its stages: the probe, fine-tuning (full or LoRA), or both
    if strategy.finetunes and "learning_rate" not in run.given:  # the method's own default (LoRA wants more)
        training_args.learning_rate = FINETUNE_METHODS.get(transfer_args.finetune_method).learning_rate
    if augmentation_args.model_ema:
        refuse_under_sharding(
            training_args,
            "--model_ema",
            "the average is a full copy of the model, updated from its parameters, which FSDP and ZeRO shard "
            "across processes (not tested there)",
            "Train without --model_ema under sharding, or with DDP.",
        )

    # 4. Data: `text` or `image` plus `label` (a ClassLabel, a list of them for multi-label, or a float target for
    #    regression), with train / validation (/ test) splits.
    with training_args.main_process_first(desc="loading data"):
        raw_datasets = load_transfer_dataset(
            data_args,
            cache_dir=model_args.cache_dir,
            task=transfer_args.task,
            # No validation split: one is carved from the pool before a budget is drawn from it, or when asked for;
            # otherwise step 4a decides.
            hold_out_validation="validation_split_percentage" in run.given
            or (strategy.finetunes and data_args.draws_train_subset),
            unlabelled_fraction=semi_args.unlabelled_split_percentage,
        )
    task = infer_task(raw_datasets)
    transfer_args.check_task(task)
    label_names = label_names_of(raw_datasets, data_args)  # the classes, or the one target's name
    # 4a. Without a validation split the probe cross-validates on every row, and fine-tuning on few rows trains on
    #     every row, holding a share out only for what must be chosen on unseen rows: multi-label thresholds, the best
    #     checkpoint, or a search's trials, after which it refits on all rows (hf_transfer.finetuning.validation).
    validation_plan = plan_validation(
        has_validation="validation" in raw_datasets,
        finetunes=strategy.finetunes,
        task=TASKS.get(task),
        hp_search=search_args.hp_search,
        load_best_model_at_end=training_args.load_best_model_at_end,
        fraction=data_args.validation_split_percentage,
        rows_per_label=len(raw_datasets["train"]) / len(label_names),
    )
    if validation_plan.carve:
        raw_datasets = carve_split(
            raw_datasets,
            "validation",
            data_args.validation_split_percentage,
            data_args.split_seed,
            data_source_name(data_args),
        )
    semi_args.check_run(strategy, task)
    # 4b. The unlabelled pool, if any (a file, an image folder, or a share of train set aside): the probe strategies
    #     self-train on it, the fine-tuning ones train FixMatch-style (hf_transfer.semi_supervised).
    pool = load_unlabelled_pool(
        raw_datasets,
        semi_args,
        text_column=data_args.text_column,
        image_column=data_args.image_column,
        seed=data_args.split_seed,
        cache_dir=model_args.cache_dir,
    )
    semi_method = SEMI_SUPERVISED_METHODS.get(strategy.semi_supervised) if pool is not None else None
    logger.info(f"Task {task}, labels {label_names}; splits: { {k: len(v) for k, v in raw_datasets.items()} }")
    augmentation_args.check_run(
        strategy=transfer_args.strategy,
        task=task,
        modality=infer_modality(raw_datasets),
        label_smoothing=training_args.label_smoothing_factor,
        load_best_model_at_end=training_args.load_best_model_at_end,
    )

    # 5. Model and processor: a stock AutoModelFor{Sequence,Image}Classification with a new head (BCE per label for
    #    multi-label, MSE for regression).
    loaded = load_transfer_model(
        model_args,
        label_names,
        infer_modality(raw_datasets),
        image_size=transfer_args.image_size,
        main_process_first=training_args.main_process_first,
        pooling=transfer_args.classifier_pooling,
        task=task,
    )
    model_path, modality, processor, model = loaded.path, loaded.modality, loaded.processor, loaded.model
    logger.info(f"Newly initialised layers: {loaded.new_modules}; task head (trained in full): {loaded.head_modules}")
    modality_entry = MODALITIES.get(modality)
    if modality_entry.uses_max_seq_length:
        transfer_args.max_seq_length = cap_max_seq_length(transfer_args.max_seq_length, model, processor)

    # 6. Preprocessing: tokenize text once (cached), transform images on the fly.
    with training_args.main_process_first(desc="preprocessing"):
        processed = preprocess_dataset(raw_datasets, processor, modality, transfer_args.max_seq_length)
        if pool is not None:
            unlabelled = preprocess_dataset(pool.rows, processor, modality, transfer_args.max_seq_length)
    data_collator = create_collator(processor, modality, task)
    if modality_entry.transformed_on_read:
        training_args.remove_unused_columns = False  # the transform needs the `image` column

    # 6b. Fine-tuning's training transform (images): timm's augmentation around the model's own processor, read by
    #     DataLoader workers; the probe's features and every evaluation use the evaluation transform above.
    augmentation = create_image_augmentation(
        augmentation_args, augmentation_args.resolve_augmentation(transfer_args.strategy, task, modality), processor
    )

    def training_rows():
        """The rows fine-tuning reads: the tokenized text, or the images through the training augmentation."""
        if augmentation is None:
            return processed["train"]
        return preprocess_dataset(raw_datasets["train"], processor, modality, augmentation=augmentation)

    train_dataset = training_rows()
    if augmentation is not None:
        logger.info(f"Training augmentation: {augmentation.description}")
    if modality_entry.transformed_on_read and "dataloader_num_workers" not in run.given:
        training_args.dataloader_num_workers = image_dataloader_workers(on_gpu=training_args.device.type != "cpu")
    sample = sample_inputs(processed["train"], data_collator, model.device)
    # 6c. The head's start (--head_init): the stock random one, or the text prior of an aligned dual encoder.
    if head_init_args.entry.apply is not None:
        head_init_args.check_run(strategy, task, modality)
        head_init_args.entry.apply(model, sample["pixel_values"], label_names, head_init_args)
    if strategy.probes and transfer_args.trains_lora:
        # An architecture that LoRA breaks stops now, not after the probe stage (a throw-away copy is wrapped).
        create_lora_model(copy.deepcopy(model), lora_args, new_modules=loaded.new_modules, sample_inputs=sample)

    save_kwargs = {"max_seq_length": transfer_args.max_seq_length}
    start = time.time()
    metrics = {
        "task": task,
        "strategy": transfer_args.strategy,
        "modality": modality,
        "pooling": classifier_pooling(model),
        "train_samples": len(raw_datasets["train"]),  # sentences, not the windows of long ones
        "augmentation": augmentation.description if augmentation is not None else "none",
        "head_init": head_init_args.head_init,
        "eval_samples": len(raw_datasets["validation" if "validation" in raw_datasets else "train"]),
        **window_counts(processed),  # token classification: sentences read in windows, words no window tags
    }
    if pool is not None:
        metrics.update(semi_args.describe(semi_method, pool))

    # 7a. Pair training (contrastive_probe): the backbone learns to embed rows that share labels close together, on
    #     the very features the probe then reads.
    if strategy.trains_on_pairs:
        model.to(training_args.device)
        feature_module = locate_probe_features(model, loaded.new_modules, sample).feature_module
        row_labels = row_label_tensor(raw_datasets["train"]["label"], len(label_names))
        metrics.update(
            train_on_pairs(model, feature_module, train_dataset, row_labels, data_collator, pair_args, training_args)
        )

    # 7b. Linear probe (the whole job for linear_probe and contrastive_probe; the first stage of lp_ft).
    if strategy.probes:
        cache_identity = {
            "model": model_fingerprint(model_path),
            "revision": model_args.model_revision,
            "preprocessing": describe_preprocessing(processor, modality, transfer_args.max_seq_length),
        }
        model.to(training_args.device)
        self_training = None
        if semi_method is not None and semi_method.trains_probe:
            self_training = semi_method.implementation(
                semi_args, multi_label=not TASKS.get(task).one_class_per_row, hidden_labels=pool.has_hidden_labels
            )
        # Every process extracts its share of the rows; each fits the same probe on all of them.
        probe, probe_scores = probe_classification_model(
            model,
            dict(processed),
            data_collator,
            # Features of a backbone trained in this run are not reusable.
            cache=None if strategy.trains_on_pairs else FeatureCache(transfer_args.feature_cache_dir),
            cache_identity=cache_identity,
            new_modules=loaded.new_modules,
            l2_grid=transfer_args.probe_l2_grid or DEFAULT_L2_GRID,
            max_iter=transfer_args.probe_max_iter,
            batch_size=transfer_args.feature_batch_size,
            task=task,
            across_processes=True,
            cross_validation_folds=transfer_args.probe_folds,
            seed=training_args.seed,
            unlabelled=unlabelled if self_training is not None else None,
            self_train=self_training,
        )
        metrics["probe_l2"] = probe.l2
        if self_training is not None:
            metrics.update(self_training.report.metrics())
        if probe.validation_folds and self_training is not None:
            # The folds scored the probe of the labelled rows; the saved one also learned from pseudo-labels.
            del probe_scores["validation"]
            metrics["validation_source"] = (
                f"none: the probe's L2 was chosen by {probe.validation_folds}-fold cross-validation on the labelled "
                "rows, before self-training on the unlabelled pool (give a --validation_file for held-out scores)"
            )
        elif probe.validation_folds and strategy.trains_on_pairs:
            # Pair training saw every fold's rows: out-of-fold scores would flatter the model, so none are reported.
            del probe_scores["validation"]
            metrics["validation_source"] = (
                f"none: the probe's L2 was chosen by {probe.validation_folds}-fold cross-validation on the training "
                "rows, which pair training had all seen (give a --validation_file for held-out scores)"
            )
        elif probe.validation_folds:
            metrics["validation_source"] = (
                f"out-of-fold predictions of {probe.validation_folds}-fold cross-validation on the training rows "
                "(no validation split); the saved probe is refitted on all of them"
            )
        metrics["probe_runtime"] = time.time() - start
        prefix = "probe_" if strategy.finetunes else ""  # the probe is a first stage: its scores are not the run's
        for split, scores in probe_scores.items():
            split_name = {"validation": "eval", "train": "train"}.get(split, split)
            for key, value in scores.items():
                metrics[f"{prefix}{split_name}_{key}"] = value

    if not strategy.finetunes:
        metrics["trained"] = True
        metrics["train_runtime"] = time.time() - start
        backbone_trainable, metrics["total_params"] = count_parameters(model)
        head_params = probe.weight.numel() + probe.bias.numel()
        metrics["trainable_params"] = backbone_trainable if strategy.trains_backbone else head_params
        if training_args.should_save:
            publish_classifier(model, processor, training_args.output_dir, **save_kwargs)

    # 7c. Fine-tuning with Trainer: full or LoRA (also the second stage of lp_ft).
    else:
        # Regression: the head trains on standardised targets and predicts raw units (hf_transfer.finetuning.targets);
        # LP-FT's head is the probe's, already in raw units.
        predicts_numbers = TASKS.get(task).decision == "value"
        target_scale = TargetScale.of(raw_datasets["train"]["label"]) if predicts_numbers else None
        if transfer_args.trains_lora:
            training_args.label_names = ["labels"]  # peft hides the forward signature Trainer reads them from

        def ready_to_finetune(start, lora):
            """`start` as fine-tuning trains it, in adapters of `lora` for LoRA (the run's model, and the fresh copy
            each search trial trains)."""
            if transfer_args.trains_lora:
                start = create_lora_model(
                    start,
                    lora,
                    new_modules=loaded.new_modules,
                    sample_inputs={k: v.to(start.device) for k, v in sample.items()},
                )
            if target_scale is not None:
                standardize_target_head(start, target_scale, new_head=not strategy.head_from_probe)
            return start

        def ema_callbacks(resume_from):
            if not augmentation_args.model_ema:
                return None
            decay, warmup = augmentation_args.model_ema_decay, augmentation_args.model_ema_warmup
            return [ModelEmaCallback(decay, warmup, resume_from=resume_from)]

        trainer_kwargs = dict(
            train_dataset=train_dataset,
            eval_dataset=processed.get("validation"),
            processing_class=processor,
            data_collator=data_collator,
            compute_metrics=create_compute_metrics(task, label_names=label_names, windows=sentence_windows(processed)),
            head_learning_rate=transfer_args.head_learning_rate,
            layer_decay=transfer_args.layer_decay,
            head_modules=loaded.head_modules,
            target_scale=target_scale,
            task=task,
            batch_mixer=create_batch_mixer(
                augmentation_args,
                num_labels=len(label_names),
                task=task,
                label_smoothing=training_args.label_smoothing_factor,
            ),
        )

        # 7c'. Optional search (--hp_search N): optuna trials on fresh copies of the model, scored on validation; the
        #      run then trains with the best trial's values (hf_transfer.finetuning.search).
        if search_args.hp_search:
            search = choose_hyperparameters(
                search_args.hp_search,
                transfer_args.finetune_method,
                task=task,
                model=model,
                prepare=ready_to_finetune,
                training_args=training_args,
                lora_args=lora_args,
                trainer_kwargs={**trainer_kwargs, "callbacks": ema_callbacks(None)},
                resuming=run.checkpoint is not None,
            )
            lora_args = search.apply(training_args, lora_args)
            metrics.update(search.metrics())
        if validation_plan.refit_on_all_rows:  # the trials' held-out rows train the final model too
            raw_datasets, processed = merge_validation_into_train(raw_datasets), merge_validation_into_train(processed)
            trainer_kwargs.update(train_dataset=training_rows(), eval_dataset=None)
            metrics["train_samples"] = len(raw_datasets["train"])
        if "validation" not in processed and training_args.eval_strategy != "no":
            logger.info("No validation rows: no evaluation during training (--eval_strategy no).")
            training_args.eval_strategy = IntervalStrategy.NO

        model = ready_to_finetune(model, lora_args)
        trainable, total = count_parameters(model)
        logger.info(f"Trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)")
        # 7c''. With an unlabelled pool: FixMatch's consistency loss on the pool's weak / strong views besides the
        #       supervised loss (hf_transfer.semi_supervised.trainer); the saved model is the same kind.
        trainer_class = TransferTrainer
        if semi_method is not None and not semi_method.trains_probe:
            trainer_class = semi_method.implementation.resolve()
            pool_dataset, strong_view, views = pool_views(
                pool.rows,
                unlabelled,
                processor,
                modality_entry.augmentable,
                semi_args.strong_mask_probability,
                training_args.seed,
            )
            logger.info(f"FixMatch views: {views}")
            metrics["semi_supervised_views"] = views
            trainer_kwargs.update(fixmatch_arguments(semi_args, pool, len(label_names), raw_datasets["train"], task))
            trainer_kwargs.update(unlabelled=pool_dataset, strong_view=strong_view)
        trainer = trainer_class(
            model=model, args=training_args, callbacks=ema_callbacks(run.checkpoint), **trainer_kwargs
        )
        metrics.update(train_whole_run(trainer, run.checkpoint))  # whole-run totals; with --model_ema, the average
        if trainer_class is not TransferTrainer:
            metrics.update(trainer.semi_supervised_metrics())
        if target_scale is not None:
            fold_target_scale(trainer.model)  # a plain raw-unit Linear from here on, in memory and on disk
        if TASKS.get(task).fits_decision_on_validation:  # chosen on validation, saved with the model, used from here on
            validation = trainer.predict(processed["validation"], metric_key_prefix="thresholds")
            thresholds = choose_decision_thresholds(validation.predictions, validation.label_ids)
            set_decision_thresholds(trainer.model, thresholds)
            trainer.compute_metrics = create_compute_metrics(task, thresholds, label_names)
        publish_trained_model(trainer, processor, training_args.output_dir, **save_kwargs)
        trainer.save_state()
        metrics["trained"] = trainer.state.global_step > 0 or strategy.head_from_probe
        if "validation" in processed:
            metrics.update(trainer.evaluate(metric_key_prefix="eval"))
        else:
            metrics.pop("eval_samples")
            metrics["validation_source"] = validation_plan.source
        if "test" in processed:
            metrics.update(trainer.predict(processed["test"], metric_key_prefix="test").metrics)
        metrics["trainable_params"], metrics["total_params"] = trainable, total

        if transfer_args.merge_lora and training_args.should_save:
            publish_merged_lora(trainer.model, processor, training_args.output_dir)

    # 8. Results (all_results.json), model card, and the Hub push: main process only.
    metrics["base_model"] = model_args.model_name_or_path
    metrics["num_processes"] = training_args.world_size
    finish_recipe(
        run,
        metrics,
        RunRecord(
            recipe="finetune",
            base_model=model_args.model_name_or_path,
            base_model_path=model_path,
            modality=modality,
            method=transfer_args.strategy,
            datasets=[data_source_name(data_args)],
            label_names=label_names,
            arguments=tuple(a for a in run.arguments if a is not hub_args),  # the Hub token stays out of the card
            task=task,
            world_size=training_args.world_size,
            **saved_format_info(model),
        ),
        push_merged=transfer_args.push_merged,
    )


if __name__ == "__main__":
    run_recipe(main)
