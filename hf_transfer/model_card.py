"""Model cards generated from what a run actually did.

A recipe records its run in `<output_dir>/transfer_run.json` (`hf_transfer.run_record.RunRecord`): the recipe, base
model, data, strategy, the arguments that differ from their defaults (secrets never), parameter
counts, hardware, library versions and its scores per split. `create_model_card` loads that record
(`RunRecord.load`) and `trainer_state.json` and renders a README.md with Hub metadata (`base_model`, `library_name`,
`tags`, `datasets`, `metrics`, `model-index`) and a usage snippet for the saved format (`hf_transfer.model_card_usage`).
Because everything comes from files in the output directory, a card can be rebuilt and pushed long after the run
(`python -m hf_transfer push`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .model_card_usage import usage_snippet
from .registry import get_builtin_dataset
from .run_record import RunRecord, looks_like_hub_id
from .tasks import TASKS

__all__ = ["create_model_card"]


def _dataset_hub_id(name: str) -> str:
    """A built-in data set's Hub counterpart when it has one (others are named in the card text only)."""
    builtin = get_builtin_dataset(name)
    return builtin.hub_id if builtin is not None and builtin.hub_id else name


def _split_name(split: str) -> str:
    """The Hub's name of a split: `eval` is `validation`."""
    return {"eval": "validation"}.get(split, split)


def _metric_rows(record: RunRecord) -> list[tuple[str, str, str, float]]:
    """`(name, split, metric, value)` of each score, by name (`test_micro_f1`: the key in `all_results.json`)."""
    return sorted(
        (f"{split}_{metric}", split, metric, value)
        for split, values in record.scores.items()
        for metric, value in values.items()
    )


def _per_label_table(record: RunRecord) -> list[str]:
    """A multi-label run's F1 per label (at the saved decision thresholds), or a token classifier's per entity type,
    on each split that has them."""
    task = TASKS.get(record.task)
    what = task.per_label_scores
    splits = [split for split in ("eval", "test") if split in record.label_scores]
    if what is None or not splits:
        return []
    header = " | ".join(_split_name(split) for split in splits)
    metric = task.per_label_metric.upper() if len(task.per_label_metric) <= 2 else task.per_label_metric
    lines = ["", f"### {metric} per {what}", "", f"| {what} | {header} |", "|---|" + "---|" * len(splits)]
    for name in record.label_score_names():
        cells = [record.label_scores[split][name] for split in splits]
        # A negative score is torchmetrics' -1 for a class the split holds no box of.
        lines.append(f"| {name} | " + " | ".join(f"{v:.4f}" if v >= 0 else "-" for v in cells) + " |")
    return lines


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _loss_table(output_dir: Path, max_rows: int = 20) -> str:
    history = _read_json(output_dir / "trainer_state.json").get("log_history", [])
    rows = [h for h in history if "loss" in h or "eval_loss" in h]
    if not rows:
        return ""
    if len(rows) > max_rows:
        step = len(rows) / max_rows
        rows = [rows[int(i * step)] for i in range(max_rows - 1)] + [rows[-1]]
    lines = ["| epoch | step | training loss | validation loss | validation accuracy |", "|---|---|---|---|---|"]
    for h in rows:
        fmt = lambda k, h=h: f"{h[k]:.4f}" if isinstance(h.get(k), (int, float)) else "-"  # noqa: E731
        lines.append(
            f"| {h.get('epoch', 0):.2f} | {h.get('step', '-')} | {fmt('loss')} | {fmt('eval_loss')} | {fmt('eval_accuracy')} |"
        )
    return "\n".join(lines)


def _search_section(record: RunRecord) -> list[str]:
    """What `--hp_search` ran and the values the run then trained with; nothing for a run without a search."""
    search = record.hp_search
    if not search:
        return []
    chosen = {name[len("best_") :]: value for name, value in search.items() if name.startswith("best_")}
    value = search.get("objective_value")
    score = f" (best {value:.4f})" if isinstance(value, (int, float)) else ""
    runtime = search.get("runtime")
    took = f" in {runtime:.1f} s" if isinstance(runtime, (int, float)) else ""
    return [
        "",
        "### Hyperparameter search",
        "",
        f"{search.get('trials')} optuna trials{took} (`--hp_search`, `Trainer.hyperparameter_search`), each scored on the "
        f"validation split by `{search.get('objective')}`{score}; the model was trained with the best trial's values:",
        "",
        *[
            f"- {name}: {value:.4g}" if isinstance(value, float) else f"- {name}: {value}"
            for name, value in chosen.items()
        ],
    ]


def _semi_supervised_section(record: RunRecord) -> list[str]:
    """What the run learned from unlabelled rows (`hf_transfer.semi_supervised`); nothing without a pool."""
    semi = record.semi_supervised
    if not semi:
        return []
    thresholds = semi.get("thresholds") or []
    per_class = ", ".join(f"{name}: {value:.3g}" for name, value in zip(record.label_names, thresholds))
    fixed = "fixed" if not semi.get("adaptive_thresholds") else f"per class, at least {semi.get('min_threshold')}"
    lines = [
        "",
        "### Unlabelled rows",
        "",
        f"- Method: `{semi.get('method')}`; pool: {semi.get('unlabelled_samples')} rows from {semi.get('source')}",
        f"- Confidence threshold {semi.get('threshold')} ({fixed}); distribution alignment: "
        f"{'on' if semi.get('distribution_alignment') else 'off'}"
        + ("; pseudo-labels class-balanced" if semi.get("balanced") else ""),
    ]
    if "rounds" in semi:
        lines.append(
            f"- Self-training rounds run: {semi.get('rounds')} (of at most {semi.get('max_rounds')}); rows "
            f"pseudo-labelled per round: {semi.get('pseudo_labelled_per_round')}"
        )
    if "unlabelled_rows_seen" in semi:
        lines.append(
            f"- FixMatch: weight {semi.get('unlabelled_weight')}, {semi.get('unlabelled_ratio')} unlabelled rows per "
            f"labelled row; {semi.get('unlabelled_rows_seen')} pool rows read, {semi.get('mask_rate', 0):.1%} of them "
            f"above their threshold; views: {semi.get('views')}"
        )
    lines.append(f"- Pool rows the final model learned pseudo-labels of: {semi.get('pseudo_labelled_samples')}")
    if per_class:
        lines.append(f"- Final thresholds: {per_class}")
    if "pseudo_label_accuracy" in semi:
        lines.append(
            f"- Pseudo-label accuracy (the pool was a share of train, its labels hidden from training): "
            f"{semi['pseudo_label_accuracy']:.3f}"
        )
    return lines


def _intro(record: RunRecord, base_reference: str, dataset_name: str) -> str:
    """The card's first sentence: what the model is and how it was made."""
    base = f"This model is `{record.base_model}`" + (
        f" (`{base_reference}`)" if base_reference != record.base_model else ""
    )
    hf_transfer = "[hf_transfer](https://pypi.org/project/hf-transfer-toolkit/)"
    recipe = f"recipe `recipes/{record.recipe}.py`"
    if record.saved_as == "backbone":
        return (
            f"{base} pretrained on {dataset_name} with the **{record.method}** objective of {hf_transfer}: a backbone "
            f"without a task head ({record.pooling or 'pooled'} embeddings), to transfer with `recipes/finetune.py` "
            f"({recipe})."
        )
    if record.saved_as == "dual_encoder":
        classes = ", ".join(map(str, record.label_names[:20]))
        return (
            f"{base}: an image tower and a text tower aligned on {dataset_name}"
            + (f" ({len(record.label_names)} classes: {classes})" if classes else "")
            + f" with the **{record.method}** method of {hf_transfer} ({recipe}), saved as a "
            "`VisionTextDualEncoderModel` for zero-shot image classification."
        )
    if record.saved_as == "cross_modal":
        classes = ", ".join(map(str, record.label_names[:20]))
        return (
            f"{base}, a text encoder, whose transformer body classifies images of {dataset_name}"
            f" ({len(record.label_names)} classes: {classes}) through a trained patch embedder: **{record.method}** "
            f"cross-modal fine-tuning of {hf_transfer} ({recipe}), saved as a `CrossModalForImageClassification` "
            "whose code travels with its weights."
        )
    domains = record.domains or {}
    if domains.get("source") and domains.get("target"):
        labels = ", ".join(map(str, record.label_names[:20]))
        oracle = ", except by the target_oracle upper bound)." if record.method.startswith("target_oracle") else ")."
        return (
            f"{base} adapted from the labelled domain {domains['source']} to the unlabelled domain "
            f"{domains['target']} ({len(record.label_names)} labels: {labels}) with **{record.method}** domain "
            f"adaptation of {hf_transfer} ({recipe}; target labels were used only for evaluation{oracle}"
        )
    outputs = TASKS.get(record.task).describe_outputs([str(name) for name in record.label_names])
    return f"{base} transferred to {dataset_name} ({outputs}) with the **{record.method}** strategy of {hf_transfer} ({recipe})."


def _eval_results(record: RunRecord, pipeline_tag: str, dataset_name: str, hub_datasets: list[str]) -> list[EvalResult]:
    """The model-index entries: each score on its dataset (a domain's own for a domain split) and split."""
    results = []
    for name, split, metric, value in _metric_rows(record):
        domain_dataset, split = record.dataset_of_split(split)
        if domain_dataset is not None:
            hub_id = _dataset_hub_id(domain_dataset)
            metric_dataset = domain_dataset
            metric_dataset_type = hub_id if looks_like_hub_id(hub_id) else domain_dataset
        else:
            metric_dataset = dataset_name
            metric_dataset_type = hub_datasets[0] if hub_datasets else dataset_name
        results.append(
            EvalResult(
                task_type=pipeline_tag,
                dataset_type=metric_dataset_type,
                dataset_name=metric_dataset,
                dataset_split=_split_name(split) or "validation",
                metric_type=metric,
                metric_name=name,
                metric_value=value,
            )
        )
    return results


def _pseudo_label_line(record: RunRecord) -> Optional[str]:
    """What target self-training ended with: how many target rows were pseudo-labelled, at what thresholds."""
    info = record.pseudo_labels
    if not info or "target_pseudo_labelled_rows" not in info:
        return None
    line = (
        f"- Target self-training: {info['target_pseudo_labelled_rows']} of {info.get('target_pseudo_label_pool_rows')} "
        f"unlabelled target rows pseudo-labelled at the end, per-class thresholds "
        f"{info.get('target_pseudo_label_thresholds')}"
    )
    if "target_pseudo_label_accuracy" in info:
        line += f"; their accuracy against the held-back target labels: {info['target_pseudo_label_accuracy']:.4f}"
    return line


def create_model_card(output_dir: str | os.PathLike, repo_id: Optional[str] = None) -> ModelCard:
    """Render the card of an output directory (see module docstring); `repo_id` goes in the snippet."""
    output_dir = Path(output_dir)
    record = RunRecord.load(output_dir)
    is_adapter = (output_dir / "adapter_config.json").is_file()
    repo_id = repo_id or output_dir.name
    base_reference = record.base_model_hub_id or record.base_model_path
    if record.saved_as == "backbone":
        pipeline_tag = "sentence-similarity" if record.sentence_transformers else "feature-extraction"
    elif record.saved_as == "dual_encoder":
        pipeline_tag = "zero-shot-image-classification"
    else:
        pipeline_tag = TASKS.get(record.task).pipeline_tag(record.modality)
    hub_datasets = [d for d in map(_dataset_hub_id, record.datasets) if looks_like_hub_id(d)]
    dataset_name = ", ".join(record.datasets) or "custom"
    metric_rows = _metric_rows(record)
    eval_results = _eval_results(record, pipeline_tag, dataset_name, hub_datasets)
    card_data = ModelCardData(
        base_model=record.base_model_hub_id,
        library_name="peft"
        if is_adapter
        else ("sentence-transformers" if record.sentence_transformers else "transformers"),
        pipeline_tag=pipeline_tag,
        tags=["hf_transfer", record.recipe, record.method.split(" ")[0], record.modality]
        + (["lora"] if is_adapter else []),
        datasets=hub_datasets or None,
        metrics=sorted({metric for _, _, metric, _ in metric_rows}) or None,
        model_name=repo_id,
        eval_results=eval_results or None,
    )
    trainable, total, runtime = record.trainable_params, record.total_params, record.train_runtime
    body = [
        f"# {repo_id}",
        "",
        _intro(record, base_reference, dataset_name),
        "",
        *(
            [
                "> **Untrained:** this run trained nothing (`--num_train_epochs 0`); the weights are the starting point "
                "and the results are a baseline.",
                "",
            ]
            if record.trained is False
            else []
        ),
        "## Results",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {name} | {value:.4f} |" for name, _, _, value in metric_rows],
        *(["", f"Validation (`eval_*`) scores: {record.validation_source}."] if record.validation_source else []),
        *_per_label_table(record),
        "",
        "## Training",
        "",
        f"- Strategy: `{record.method}` on a "
        + (
            "text encoder's body, reading images" if record.saved_as == "cross_modal" else f"{record.modality} backbone"
        ),
        f"- Trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.3f}%)"
        if trainable is not None and total
        else "",
        f"- Training time: {runtime:.1f} s" if runtime is not None else "",
        f"- Hardware: {record.hardware}",
        _pseudo_label_line(record),
        "",
        "Arguments that differ from their defaults:",
        "",
        "```json",
        json.dumps(record.hyperparameters or {}, indent=2, sort_keys=True, default=str),
        "```",
        *_search_section(record),
        *_semi_supervised_section(record),
    ]
    loss = record.loss
    if loss is not None and loss.name:
        body += [
            "",
            f"### Loss: `{loss.name}`",
            "",
            "```json",
            json.dumps(loss.config, indent=2, sort_keys=True, default=str),
            "```",
        ]
        if loss.citation:
            body += ["", "```bibtex", loss.citation.strip(), "```"]
    table = _loss_table(output_dir)
    if table:
        body += ["", "### Training log", "", table]
    body += [
        "",
        "## Usage",
        "",
        "```python",
        usage_snippet(record, repo_id, is_adapter, base_reference),
        "```",
        "",
        "## Framework versions",
        "",
        *[f"- {name}: {version}" for name, version in record.versions.items()],
        "",
    ]
    content = f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(line for line in body if line is not None)
    return ModelCard(content)
