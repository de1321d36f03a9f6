#!/usr/bin/env python
"""Transfer a pretrained classification backbone to object detection: a DETR-family detector
(`AutoModelForObjectDetection`, Conditional DETR by default) built on the backbone, its pretrained weights loaded
from the local checkpoint, trained by `Trainer` and scored with COCO mAP (torchmetrics). Or fine-tune an existing
detection checkpoint on new classes (`--model_name_or_path`).

Strategies (`--strategy`): `frozen_backbone` (only the detection neck and head train: the linear probe's analogue),
`full`, `lora` (peft adapters in the backbone, saved merged), `head_then_full` (the neck and head first, then every
weight: LP-FT's analogue).

    python recipes/detect.py                                        # built-in default: EfficientNet-Lite0, canvases
    python recipes/detect.py --backbone mobilenet-v2 --dataset_name digits_boxes --strategy frozen_backbone \
        --output_dir outputs/digits-detr
    python recipes/detect.py --backbone efficientnet-lite0 --train_dir data/train --validation_dir data/val \
        --output_dir outputs/my-detector                            # folders of images + COCO annotations.json

The output folder loads with `AutoModelForObjectDetection.from_pretrained` and `pipeline("object-detection")`.
Adapting it to your data: `--train_dir` folders with a COCO `annotations.json`, or a `datasets` set whose rows have an
image and `objects` (`bbox` as COCO [x, y, w, h] in pixels, `category`); name the columns with `--image_column` and
`--objects_column`.
"""

import dataclasses
import logging
import time
from pathlib import Path

from hf_transfer.detection import (
    category_names_of,
    collate_detection,
    create_box_augmentation,
    create_detector,
    detect_argument_classes,
    detection_source_name,
    detection_transform,
    evaluate_detector,
    load_detection_dataset,
    neck_module_names,
    set_trainable,
)
from hf_transfer.finetuning import TransferTrainer
from hf_transfer.finetuning.lora import resolve_lora_target_modules
from hf_transfer.models import count_parameters
from hf_transfer.recipe import finish_recipe, publish_classifier, run_recipe, start_recipe, train_whole_run
from hf_transfer.run_record import RunRecord
from hf_transfer.tasks import TASKS

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = str(Path(__file__).resolve().parent / "configs" / "detect_default.yaml")
TASK = "object_detection"

# DETR's own training recipe (Carion et al. 2020): AdamW, weight decay 1e-4, gradient norm clipped at 0.1.
DETECTION_DEFAULTS = {"learning_rate": 1e-4, "weight_decay": 1e-4, "max_grad_norm": 0.1, "remove_unused_columns": False}


def main():
    # 1-3. Arguments, logging, the output folder (a one-stage run resumes from its last checkpoint).
    run = start_recipe(
        detect_argument_classes(),
        DEFAULT_CONFIG,
        defaults=DETECTION_DEFAULTS,
        resumes=lambda model_args, data_args, detect_args, *rest: len(detect_args.strategy_entry.stages) == 1,
    )
    model_args, data_args, detect_args, lora_args, hub_args, training_args = run.arguments
    strategy = detect_args.strategy_entry
    task = TASKS.get(TASK)
    training_args.remove_unused_columns = False  # the transform reads `image` and `objects`

    # 4. Data: canonical rows (image, objects with COCO boxes and categories), every box checked.
    with training_args.main_process_first(desc="loading data"):
        splits = load_detection_dataset(data_args, cache_dir=model_args.cache_dir)
    label_names = category_names_of(splits)
    logger.info(f"Classes {label_names}; {task.summarize_labels(splits)}")

    # 5. The detector: a DETR-family neck and head on the pretrained backbone (or a detection checkpoint).
    detector = create_detector(model_args, label_names, data_args.image_size)
    model, processor = detector.model, detector.processor
    neck = neck_module_names(model)
    logger.info(f"Backbone ({detector.backbone_kind}) from {detector.backbone_source}; neck and head: {neck}")

    # 6. Preprocessing on the fly: box-aware augmentation (training only), then the image processor.
    augmentation = create_box_augmentation(data_args.image_size) if detect_args.augment else None
    train_dataset = splits["train"].with_transform(detection_transform(processor, augmentation))

    # 7. Training, one Trainer per stage: what each trains is the strategy's (hf_transfer.detection.strategies).
    start = time.time()
    metrics = {"task": TASK, "strategy": strategy.name, "modality": "vision", "train_samples": len(splits["train"])}
    epochs = training_args.num_train_epochs
    for number, stage in enumerate(strategy.stages):
        last = number == len(strategy.stages) - 1
        stage_epochs = epochs - detect_args.head_epochs if last and number else min(detect_args.head_epochs, epochs)
        if len(strategy.stages) == 1:
            stage_epochs = epochs
        # The backbone, or its LoRA adapters, at a tenth of the neck's rate: adapters at the neck's own rate wrecked
        # the pretrained features in one seed of two (benchmarks/RESULTS.md, object detection).
        backbone_lr = detect_args.backbone_learning_rate or training_args.learning_rate / 10
        if stage == "lora":
            from peft import LoraConfig, get_peft_model

            targets = lora_args.lora_target_modules or resolve_lora_target_modules(model, neck)
            config = LoraConfig(
                r=lora_args.lora_r,
                lora_alpha=lora_args.lora_alpha,
                lora_dropout=lora_args.lora_dropout,
                target_modules=targets,
            )
            model = get_peft_model(model, config)
            # The neck and head train in full in place (not peft's `modules_to_save`, which matches names by suffix:
            # `model.encoder` would also select a ResNet backbone's `encoder`); the run saves the model merged.
            base = model.get_base_model()
            for name in neck:
                base.get_submodule(name).requires_grad_(True)
        else:
            set_trainable(model, stage)
        stage_args = training_args
        if len(strategy.stages) > 1:
            stage_args = dataclasses.replace(
                training_args,
                num_train_epochs=stage_epochs,
                save_strategy="no" if not last else training_args.save_strategy,
            )
        stage_args = dataclasses.replace(stage_args, learning_rate=backbone_lr)  # the neck's is head_learning_rate
        trainable, total = count_parameters(model)
        logger.info(
            f"Stage {number + 1} ({stage}): {trainable:,} of {total:,} parameters trained, {stage_epochs} epochs"
        )
        trainer = TransferTrainer(
            model=model,
            args=stage_args,
            train_dataset=train_dataset,
            data_collator=collate_detection,
            head_modules=neck,
            head_learning_rate=training_args.learning_rate,
            task=TASK,
        )
        if stage_epochs > 0:
            stage_metrics = train_whole_run(trainer, run.checkpoint if len(strategy.stages) == 1 else None)
            prefix = "" if last else f"{stage}_stage_"
            metrics.update({f"{prefix}{k}": v for k, v in stage_metrics.items()})
        if stage == "lora":
            model = model.merge_and_unload()  # a plain detector: what AutoModelForObjectDetection loads
        metrics["trainable_params"], metrics["total_params"] = trainable, total
    metrics["trained"] = epochs > 0
    metrics["train_runtime"] = time.time() - start

    # 8. Scores (COCO mAP, torchmetrics) on validation and test, read as the saved model's pipeline reads them.
    model.to(training_args.device)
    batch = training_args.per_device_eval_batch_size
    for split, prefix in (("validation", "eval"), ("test", "test")):
        if split in splits:
            metrics.update(
                evaluate_detector(
                    model,
                    processor,
                    splits[split],
                    label_names,
                    threshold=detect_args.score_threshold,
                    batch_size=batch,
                    prefix=prefix,
                )
            )
            metrics[f"{prefix}_samples"] = len(splits[split])

    # 9. The model (AutoModelForObjectDetection + its image processor), results, card and Hub push.
    if training_args.should_save:
        publish_classifier(model, processor, training_args.output_dir)
    base = model_args.backbone or model_args.model_name_or_path
    metrics["base_model"] = base
    metrics["random_init"] = model_args.random_init
    finish_recipe(
        run,
        metrics,
        RunRecord(
            recipe="detect",
            base_model=base,
            base_model_path=str(detector.backbone_source),
            modality="vision",
            method=strategy.name + (" (random init)" if model_args.random_init else ""),
            datasets=[detection_source_name(data_args)],
            label_names=label_names,
            arguments=tuple(a for a in run.arguments if a is not hub_args),
            task=TASK,
            world_size=training_args.world_size,
        ),
    )


if __name__ == "__main__":
    run_recipe(main)
