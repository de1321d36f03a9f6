#!/usr/bin/env python
"""Meta-learn an initialisation with MAML (or FOMAML, ANIL, Meta-SGD, meta-learned LoRA), text or vision.

The classes of the data are split into disjoint meta-train / meta-validation / meta-test sets. The
outer loop meta-trains on N-way K-shot episodes of the meta-train classes, the best checkpoint on
meta-validation episodes is kept, and meta-test accuracy (mean ± 95% interval over 600 episodes) is
reported next to two baselines on the very same episodes: a linear probe on the pretrained model's
frozen features, and plain fine-tuning from the pretrained weights with MAML's own inner loop.

    accelerate launch recipes/maml.py                                   # built-in default: MiniLM, BBC News
    accelerate launch recipes/maml.py recipes/configs/maml_vision.yaml  # EfficientNet-Lite0, Fashion-MNIST
    accelerate launch recipes/maml.py recipes/configs/maml_text.yaml --adapt all --first_order true
    accelerate launch --num_processes 2 --cpu recipes/maml.py recipes/configs/maml_text.yaml

Adapting it to your data: any `--dataset_name` / `--train_file` / `--train_dir` with enough classes;
choose the class split with `--meta_train_classes` / `--meta_validation_classes` / `--meta_test_classes`
or `--class_split`, and the episode shape with `--n_way`, `--k_shot`, `--q_queries`.
"""

# `accelerate launch --cpu --num_processes N` runs this script once; that process only starts the N workers and
# waits, so it does so before the imports below, which each worker makes for itself.
from hf_transfer.cpu_processes import start_requested_cpu_processes

start_requested_cpu_processes()


import copy
import logging
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Optional

from accelerate import PartialState
from datasets import concatenate_datasets
from transformers import TrainingArguments

from hf_transfer.data import DataArguments, data_source_name, infer_modality, load_transfer_dataset
from hf_transfer.finetuning import LoraArguments, TransferArguments, create_lora_model
from hf_transfer.hub import HubArguments
from hf_transfer.meta import (
    MAML,
    EpisodeArguments,
    EpisodeDataset,
    EpisodeSampler,
    MAMLConfig,
    MAMLTrainer,
    split_classes,
    split_meta_rows,
    zero_init_head,
)
from hf_transfer.modalities import MODALITIES
from hf_transfer.models import ModelArguments, count_parameters
from hf_transfer.models.pooling_modes import CLASSIFIER_POOLINGS
from hf_transfer.outputs import write_json_atomic
from hf_transfer.processing import cap_max_seq_length, create_collator, preprocess_dataset
from hf_transfer.recipe import (
    classifier_pooling,
    finish_recipe,
    load_transfer_model,
    publish_classifier,
    run_recipe,
    saved_format_info,
    start_recipe,
)
from hf_transfer.run_record import RunRecord

logger = logging.getLogger(__name__)

ADAPTER_SUBDIR = "adapter"  # a pooled LoRA model's meta-learned adapter, next to its merged sentence-transformers form
DEFAULT_CONFIG = str(Path(__file__).resolve().parent / "configs" / "maml_text.yaml")

# The defaults maml sets differently from finetune's, on purpose; every other flag they share is finetune's own.
MAML_DEFAULTS: dict[str, Any] = {
    # LoRA's input dropout off: in MAML's inner loop it would add noise to every adaptation step.
    "lora_dropout": 0.0,
    # The probe baseline fits a probe per meta-test episode (600) and L2 strength, finetune one per L2 strength:
    # a shorter grid and fewer L-BFGS iterations.
    "probe_l2_grid": [10.0, 1.0, 0.1, 0.01, 0.001],
    "probe_max_iter": 100,
}
_FINETUNE_FIELDS = {f.name: f for f in fields(TransferArguments)}


def finetune_flag(name: str, help: Optional[str] = None) -> Any:
    """finetune's flag `name` (a `TransferArguments` field) for maml: its help, unless maml's `help` tells more, and
    its default, unless `MAML_DEFAULTS` has maml's. Its check stays `TransferArguments`' own."""
    default = MAML_DEFAULTS.get(name, _FINETUNE_FIELDS[name].default)
    metadata = {"help": help or _FINETUNE_FIELDS[name].metadata["help"]}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class MetaRecipeArguments:
    """Model preparation and baselines of the MAML recipe.

    Args:
        max_seq_length, image_size, pooling, probe_l2_grid, probe_max_iter: finetune's flags
            (`hf_transfer.finetuning.TransferArguments`), checked by its rules; maml's own defaults are `MAML_DEFAULTS`.
            `pooling` defaults to `auto` here whatever the adaptation: the pooling a sentence-transformers checkpoint
            was trained with, else the stock head. The probe's L2 strength is chosen on meta-validation episodes.
        zero_init_head (`bool`): start the N-way head at zero (labels are shuffled per episode).
        use_lora (`bool`): meta-train peft LoRA adapters (+ head) instead of every weight; implied by
            `--adapt lora` / `lora_and_head`. The adapters are set by `LoraArguments` (`--lora_r`, ...).
        run_baselines (`bool`): also score the probe and fine-tuning baselines on the meta-test episodes.
    """

    max_seq_length: int = finetune_flag("max_seq_length")
    image_size: Optional[int] = finetune_flag("image_size")
    zero_init_head: bool = field(
        default=True,
        metadata={
            "help": "Start the N-way head at zero so no class is favoured before adaptation (labels are "
            "shuffled in every episode). Default true."
        },
    )
    use_lora: bool = field(
        default=False,
        metadata={
            "help": "Meta-train peft LoRA adapters and the head instead of every weight. Implied by --adapt "
            "lora or lora_and_head."
        },
    )
    probe_l2_grid: list[float] = finetune_flag(
        "probe_l2_grid",
        help="L2 strengths of the probe baseline (on standardised features); the best on meta-validation episodes "
        "is used at meta-test.",
    )
    probe_max_iter: int = finetune_flag("probe_max_iter")
    pooling: Optional[str] = finetune_flag(
        "pooling",
        help="Text classifier input: head (the stock transformers head) or a pooling mode ("
        f"{', '.join(CLASSIFIER_POOLINGS[1:])}; saved in sentence-transformers' format). Default: the pooling a "
        "sentence-transformers checkpoint ships (modules.json), else head.",
    )
    run_baselines: bool = field(
        default=True,
        metadata={"help": "Score the probe and fine-tuning baselines on the meta-test episodes too. Default true."},
    )

    def __post_init__(self) -> None:
        # The flags named as finetune's are finetune's: its own checks run on them, so each check is written once.
        shared = {f.name for f in fields(self)} & set(_FINETUNE_FIELDS)
        TransferArguments(**{name: getattr(self, name) for name in shared})


def main():
    # 1-3. Arguments (CLI flags, a YAML/JSON file + overriding flags, or nothing for the default job), logging on
    #      the main process, and the output folder locked, resuming a complete checkpoint of the same run. The Hub
    #      token is kept out of the saved arguments: the push happens once, at the end, with the model card.
    run = start_recipe(
        (
            ModelArguments,
            DataArguments,
            EpisodeArguments,
            MAMLConfig,
            MetaRecipeArguments,
            LoraArguments,
            HubArguments,
            TrainingArguments,
        ),
        DEFAULT_CONFIG,
        defaults=MAML_DEFAULTS,
    )
    model_args, data_args, episode_args, maml_config, recipe_args, lora_args, hub_args, training_args = run.arguments

    # 4. Data: every split pooled, then the classes split into meta-train / meta-validation / meta-test.
    with training_args.main_process_first(desc="loading data"):
        raw_datasets = load_transfer_dataset(data_args, cache_dir=model_args.cache_dir)
    pool = concatenate_datasets([raw_datasets[split] for split in raw_datasets])
    label_names = pool.features["label"].names
    class_splits = split_classes(
        label_names,
        episode_args.n_way,
        train=episode_args.meta_train_classes,
        validation=episode_args.meta_validation_classes,
        test=episode_args.meta_test_classes,
        sizes=episode_args.class_split,
        seed=episode_args.episode_seed,
    )
    rows = split_meta_rows(
        pool,
        class_splits,
        episode_args.meta_validation_fraction,
        episode_args.max_samples_per_class,
        seed=episode_args.episode_seed,
    )
    # Episodes are seeded by (episode_seed, index): every process and every resume sees the same ones.
    # The samplers check here, before any model is loaded, that each class has K + Q examples.
    samplers = {
        split: EpisodeSampler(
            pool,
            episode_args.n_way,
            episode_args.k_shot,
            episode_args.q_queries,
            rows=rows[split],
            seed=episode_args.episode_seed + offset,
            split_name=split,
        )
        for offset, split in enumerate(("train", "validation", "test"))
    }

    # 5. Model and processor: a stock AutoModelFor{Sequence,Image}Classification with an N-way head.
    way_names = [f"way_{i}" for i in range(episode_args.n_way)]  # episode labels are re-indexed 0..N-1
    loaded = load_transfer_model(
        model_args,
        way_names,
        infer_modality(raw_datasets),
        replace_head=True,
        image_size=recipe_args.image_size,
        main_process_first=training_args.main_process_first,
        pooling=recipe_args.pooling or "auto",
    )
    model_path, modality, processor, model = loaded.path, loaded.modality, loaded.processor, loaded.model
    if MODALITIES.get(modality).uses_max_seq_length:
        recipe_args.max_seq_length = cap_max_seq_length(recipe_args.max_seq_length, model, processor)
    if recipe_args.zero_init_head:
        zero_init_head(model, maml_config.head_module)
    if recipe_args.use_lora or maml_config.adapt in ("lora", "lora_and_head"):
        model = create_lora_model(model, lora_args, new_modules=loaded.new_modules)
    pretrained = copy.deepcopy(model)  # the baselines start from these non-meta-learned weights
    trainable, total = count_parameters(model)
    logger.info(f"Meta-trained parameters: {trainable:,} of {total:,}")

    # 6. Preprocessing: tokenize text once (cached), transform images on the fly.
    with training_args.main_process_first(desc="preprocessing"):
        processed = preprocess_dataset(pool, processor, modality, recipe_args.max_seq_length)
    collate_fn = create_collator(processor, modality)

    # 7. Episodes as model inputs.
    train_episodes = EpisodeDataset(
        samplers["train"], processed, collate_fn, training_args.max_steps * episode_args.meta_batch_size
    )
    validation_episodes = EpisodeDataset(
        samplers["validation"], processed, collate_fn, episode_args.num_validation_episodes
    )
    test_episodes = EpisodeDataset(samplers["test"], processed, collate_fn, episode_args.num_test_episodes)

    # 8. Meta-training; the best checkpoint on meta-validation episodes is restored at the end.
    maml = MAML(model, maml_config)
    trainer = MAMLTrainer(
        maml,
        training_args,
        train_episodes,
        validation_episodes,
        episode_args.meta_batch_size,
        episode_args.num_validation_episodes,
    )
    metrics = trainer.train(resume_from_checkpoint=run.checkpoint)

    # 9. The meta-learned model: a plain transformers (or peft) folder, or a sentence-transformers one for a pooled
    #    head (a LoRA initialisation also kept unmerged in adapter/), plus maml_config.json.
    if training_args.should_save:
        publish_classifier(
            maml.model,
            processor,
            training_args.output_dir,
            max_seq_length=recipe_args.max_seq_length,
            adapter_subdir=ADAPTER_SUBDIR,
            also_write=maml.save_meta_state,
        )
    PartialState().wait_for_everyone()

    # 10. Meta-test: MAML and both baselines on the very same episodes.
    baseline = MAML(pretrained, replace(maml_config, learn_inner_lr=False)) if recipe_args.run_baselines else None
    results = trainer.meta_test(
        test_episodes,
        episode_args.num_test_episodes,
        baseline=baseline,
        probe_l2_grid=recipe_args.probe_l2_grid if recipe_args.run_baselines else None,
        probe_max_iter=recipe_args.probe_max_iter,
    )
    per_episode = {
        **results.pop("per_episode_accuracy"),
        **{f"{k}_query_loss": v for k, v in results.pop("per_episode_query_loss").items()},
    }

    # 11. Results: per-episode accuracies and losses (meta_test_episodes.json), the summary line.
    metrics.update(results)
    metrics.update(
        {
            "base_model": model_args.model_name_or_path,
            "dataset": data_args.dataset_name,
            "modality": modality,
            "n_way": episode_args.n_way,
            "k_shot": episode_args.k_shot,
            "q_queries": episode_args.q_queries,
            "adapt": maml_config.adapt,
            "first_order": maml_config.first_order,
            "inner_steps": maml_config.inner_steps,
            "eval_inner_steps": maml_config.num_eval_inner_steps,
            "inner_lr": maml_config.inner_lr,
            "meta_sgd": maml_config.learn_inner_lr,
            "batch_norm": maml_config.batch_norm,
            "meta_train_classes": class_splits.names_of("train"),
            "meta_validation_classes": class_splits.names_of("validation") or "held-out rows of the meta-train classes",
            "meta_test_classes": class_splits.names_of("test"),
            "pooling": classifier_pooling(model),
            "trainable_params": trainable,
            "total_params": total,
            "num_processes": training_args.world_size,
        }
    )
    if training_args.should_save:
        write_json_atomic(os.path.join(training_args.output_dir, "meta_test_episodes.json"), per_episode)
    summary = ", ".join(
        f"{name} {metrics[key + '_accuracy']:.4f} ± {metrics[key + '_ci95']:.4f}"
        for name, key in (("MAML", "meta_test"), ("fine-tune", "finetune_baseline"), ("probe", "probe_baseline"))
        if key + "_accuracy" in metrics
    )
    logger.info(f"Meta-test over {episode_args.num_test_episodes} episodes: {summary}")

    # 12. Results (all_results.json), model card, and the Hub push: main process only.
    method = f"maml ({'first' if maml_config.first_order else 'second'}-order, adapt={maml_config.adapt})"
    finish_recipe(
        run,
        metrics,
        RunRecord(
            recipe="maml",
            base_model=model_args.model_name_or_path,
            base_model_path=model_path,
            modality=modality,
            method=method,
            datasets=[data_source_name(data_args)],
            label_names=way_names,
            arguments=(model_args, data_args, episode_args, maml_config, recipe_args, lora_args, training_args),
            world_size=training_args.world_size,
            **saved_format_info(model),
        ),
    )


if __name__ == "__main__":
    run_recipe(main)
