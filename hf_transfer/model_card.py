"""Model cards generated from what a run actually did.

A recipe records its run in `<output_dir>/transfer_run.json` (`hf_transfer.run_record.RunRecord`): the recipe, base
model, data, strategy, the arguments that differ from their defaults (secrets never), parameter
counts, hardware and library versions. `create_model_card` reads that file, `all_results.json` and
`trainer_state.json` and renders a README.md with Hub metadata (`base_model`, `library_name`, `tags`,
`datasets`, `metrics`, `model-index`) and a usage snippet for the saved format (plain transformers or
a peft adapter). Because everything comes from files in the output directory, a card can be rebuilt
and pushed long after the run (`python -m hf_transfer push`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Optional

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .registry import get_builtin_dataset
from .run_record import RUN_INFO_FILE, looks_like_hub_id
from .tasks import TASKS, Task

__all__ = ["create_model_card"]


def _dataset_hub_id(name: str) -> str:
    """A built-in data set's Hub counterpart when it has one (others are named in the card text only)."""
    builtin = get_builtin_dataset(name)
    return builtin.hub_id if builtin is not None and builtin.hub_id else name


# The task metrics a card lists (the end of the keys in all_results.json, after the split: `test_micro_f1`), longest
# first so `micro_f1` is not read as `f1`; per-label scores (`test_f1_<label>`) get a table of their own.
_METRICS = tuple(
    sorted(
        {metric for task in TASKS.entries() for metric in task.metrics},
        key=len,
        reverse=True,
    )
)
_SPLITS = ("train", "eval", "validation", "test")


def _split_metric(key: str) -> Optional[tuple[str, str]]:
    """`("test", "micro_f1")` for `test_micro_f1`, `("source_eval", "accuracy")` for `source_eval_accuracy`; None for
    keys that are not a split's task metric (runtimes, per-label scores)."""
    for metric in _METRICS:
        split = key[: -len(metric) - 1]
        if key.endswith(f"_{metric}") and split.rpartition("_")[2] in _SPLITS:
            return split, metric
    return None


def _task(info: dict) -> Task:
    """The task entry of the run (runs recorded before tasks existed were single-label)."""
    return TASKS.get(info.get("task") or "single_label")


def _outputs_text(info: dict) -> str:
    """`3 labels: a, b, c`, or for a regression `regression of target, in its own units`: the task entry says."""
    return _task(info).describe_outputs([str(name) for name in info["label_names"]])


def _per_label_table(info: dict, results: dict) -> list[str]:
    """A multi-label run's F1 per label (at the saved decision thresholds), or a token classifier's per entity type,
    on each split that has them."""
    task = _task(info)
    if task.per_label_scores is None:
        return []
    names = [str(name) for name in info["label_names"]]
    if task.per_token:  # scored per entity type, not per IOB tag
        names = sorted({name[2:] for name in names if name != "O"})
    splits = [split for split in ("eval", "test") if all(f"{split}_f1_{name}" in results for name in names)]
    if not splits:
        return []
    header = " | ".join({"eval": "validation"}.get(split, split) for split in splits)
    what = task.per_label_scores
    lines = ["", f"### F1 per {what}", "", f"| {what} | {header} |", "|---|" + "---|" * len(splits)]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(f"{results[f'{split}_f1_{name}']:.4f}" for split in splits) + " |")
    return lines


_THRESHOLDS_USAGE = (
    "\n\n# A label is predicted when its sigmoid probability reaches its decision threshold, chosen on validation\n"
    "# and saved with the model (decision_thresholds.json)\n"
    "import json, torch\nfrom huggingface_hub import hf_hub_download\n\n"
    'thresholds = json.load(open(hf_hub_download("{repo_id}", "decision_thresholds.json")))["thresholds"]\n'
    "{logits_line}\n"
    "labels = [[name for i, name in id2label.items() if p[i] >= thresholds[name]] for p in torch.sigmoid(logits)]"
)


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


def _usage(info: dict, repo_id: str, is_adapter: bool, base_reference: str) -> str:
    if info.get("saved_as") == "backbone":  # a pretrained backbone (contrastive_pretrain): no head
        processor = "AutoTokenizer" if info["modality"] == "text" else "AutoImageProcessor"
        snippet = (
            f"from transformers import AutoModel, {processor}\n\n"
            f'model = AutoModel.from_pretrained("{repo_id}")\n'
            f'processor = {processor}.from_pretrained("{repo_id}")'
        )
        if info.get("sentence_transformers"):
            snippet += (
                "\n\n# or, as sentence embeddings:\nfrom sentence_transformers import SentenceTransformer\n\n"
                f'model = SentenceTransformer("{repo_id}")\nembeddings = model.encode(["a sentence"])'
            )
        return snippet
    task = _task(info)
    if info.get("sentence_transformers") and task.decision == "value":
        return (
            "from sentence_transformers import SentenceTransformer\n\n"
            f'model = SentenceTransformer("{repo_id}")\n'
            'predictions = model.encode(["a sentence"])[:, 0]  # in the target\'s own units'
        )
    multi_label = task.decision == "thresholds"
    if info.get("sentence_transformers") and multi_label:
        return (
            "from sentence_transformers import SentenceTransformer\n\n"
            f'model = SentenceTransformer("{repo_id}")\n'
            "id2label = model[0].auto_model.config.id2label"
            + _THRESHOLDS_USAGE.format(
                repo_id=repo_id, logits_line='logits = model.encode(["a sentence"], convert_to_tensor=True)'
            )
        )
    if info.get("sentence_transformers"):  # a classifier on a trained pooling (`hf_transfer.models.pooled_classifier`)
        return (
            "from sentence_transformers import SentenceTransformer\n\n"
            f'model = SentenceTransformer("{repo_id}")\n'
            'logits = model.encode(["a sentence"])  # (N, num_labels)\n'
            "labels = [model[0].auto_model.config.id2label[int(i)] for i in logits.argmax(-1)]"
        )
    auto = task.model_class(info["modality"])
    processor = "AutoTokenizer" if info["modality"] == "text" else "AutoImageProcessor"
    example = '["a sentence"], return_tensors="pt"' if info["modality"] == "text" else '[image], return_tensors="pt"'
    thresholds = (
        "\nid2label = model.config.id2label"
        + _THRESHOLDS_USAGE.format(
            repo_id=repo_id, logits_line=f"logits = model(**processor({example})).logits.detach()"
        )
        if multi_label
        else ""
    )
    if is_adapter:
        id2label = {i: n for i, n in enumerate(info["label_names"])}
        problem_type = task.problem_type
        return (
            f"from peft import PeftModel\nfrom transformers import {auto}, {processor}\n\n"
            f'base = {auto}.from_pretrained(\n    "{base_reference}", num_labels={len(id2label)}, id2label={id2label},\n'
            + (f'    problem_type="{problem_type}",\n' if problem_type else "")
            + "    ignore_mismatched_sizes=True,\n)\n"
            f'model = PeftModel.from_pretrained(base, "{repo_id}")\n'
            f'processor = {processor}.from_pretrained("{repo_id}")' + thresholds
        )
    if task.per_token:
        return (
            "from transformers import pipeline\n\n"
            f'ner = pipeline("token-classification", model="{repo_id}", aggregation_strategy="simple")\n'
            'entities = ner("a sentence")  # [{"entity_group": ..., "word": ..., "start": ..., "end": ..., "score": ...}]'
        )
    return (
        f"from transformers import {auto}, {processor}\n\n"
        f'model = {auto}.from_pretrained("{repo_id}")\n'
        f'processor = {processor}.from_pretrained("{repo_id}")' + thresholds
    )


def create_model_card(output_dir: str | os.PathLike, repo_id: Optional[str] = None) -> ModelCard:
    """Render the card of an output directory (see module docstring); `repo_id` goes in the snippet."""
    output_dir = Path(output_dir)
    info = _read_json(output_dir / RUN_INFO_FILE)
    if not info:
        raise FileNotFoundError(
            f"{output_dir / RUN_INFO_FILE} is missing: it is written by the recipes at the end of a run."
        )
    results = _read_json(output_dir / "all_results.json")
    is_adapter = (output_dir / "adapter_config.json").is_file()
    repo_id = repo_id or output_dir.name
    base_reference = info.get("base_model_hub_id") or info["base_model_path"]
    is_backbone = info.get("saved_as") == "backbone"
    if is_backbone:
        pipeline_tag = "sentence-similarity" if info.get("sentence_transformers") else "feature-extraction"
    else:
        pipeline_tag = _task(info).pipeline_tag(info["modality"])
    dataset_ids = [_dataset_hub_id(d) for d in info["datasets"]]
    hub_datasets = [d for d in dataset_ids if looks_like_hub_id(d)]

    metric_rows = [
        (key, value)
        for key, value in sorted(results.items())
        if isinstance(value, (int, float)) and math.isfinite(value) and _split_metric(key) is not None
    ]
    eval_results = []
    dataset_name = ", ".join(info["datasets"]) or "custom"
    # Domain adaptation scores two datasets: `source_eval_accuracy` belongs to the source, `target_*` to the target.
    domains = info.get("domains") or {}
    for key, value in metric_rows:
        split, metric = _split_metric(key)
        domain, _, domain_split = split.partition("_")
        if domain_split and domains.get(domain):
            split, metric_dataset = domain_split, domains[domain]
            hub_id = _dataset_hub_id(metric_dataset)
            metric_dataset_type = hub_id if looks_like_hub_id(hub_id) else metric_dataset
        else:
            metric_dataset = dataset_name
            metric_dataset_type = hub_datasets[0] if hub_datasets else dataset_name
        eval_results.append(
            EvalResult(
                task_type=pipeline_tag,
                dataset_type=metric_dataset_type,
                dataset_name=metric_dataset,
                dataset_split={"eval": "validation"}.get(split, split) or "validation",
                metric_type=metric,
                metric_name=key,
                metric_value=float(value),
            )
        )
    card_data = ModelCardData(
        base_model=info.get("base_model_hub_id"),
        library_name="peft"
        if is_adapter
        else ("sentence-transformers" if info.get("sentence_transformers") else "transformers"),
        pipeline_tag=pipeline_tag,
        tags=["hf_transfer", info["recipe"], info["method"].split(" ")[0], info["modality"]]
        + (["lora"] if is_adapter else []),
        datasets=hub_datasets or None,
        metrics=sorted({_split_metric(key)[1] for key, _ in metric_rows}) or None,
        model_name=repo_id,
        eval_results=eval_results or None,
    )
    hyper = info.get("hyperparameters", {})
    trainable, total = results.get("trainable_params"), results.get("total_params")
    params_line = (
        f"- Trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.3f}%)"
        if isinstance(trainable, int) and isinstance(total, int) and total
        else ""
    )
    runtime = results.get("train_runtime")
    body = [
        f"# {repo_id}",
        "",
        f"This model is `{info['base_model']}`"
        + (f" (`{base_reference}`)" if base_reference != info["base_model"] else "")
        + (
            f" pretrained on {dataset_name} with the **{info['method']}** objective of "
            "[hf_transfer](https://pypi.org/project/hf-transfer-toolkit/): a backbone without a task head "
            f"({info.get('pooling', 'pooled')} embeddings), to transfer with `recipes/finetune.py` "
            f"(recipe `recipes/{info['recipe']}.py`)."
            if is_backbone
            else f" adapted from the labelled domain {domains['source']} to the unlabelled domain "
            f"{domains['target']} ({len(info['label_names'])} labels: {', '.join(map(str, info['label_names'][:20]))}) "
            f"with **{info['method']}** domain adaptation of [hf_transfer](https://pypi.org/project/hf-transfer-toolkit/) "
            f"(recipe `recipes/{info['recipe']}.py`; target labels were used only for evaluation"
            + (", except by the target_oracle upper bound)." if info["method"].startswith("target_oracle") else ").")
            if domains.get("source") and domains.get("target")
            else " transferred to "
            f"{dataset_name} ({_outputs_text(info)}) "
            f"with the **{info['method']}** strategy of [hf_transfer](https://pypi.org/project/hf-transfer-toolkit/) "
            f"(recipe `recipes/{info['recipe']}.py`)."
        ),
        "",
        *(
            [
                "> **Untrained:** this run trained nothing (`--num_train_epochs 0`); the weights are the starting point "
                "and the results are a baseline.",
                "",
            ]
            if results.get("trained") is False
            else []
        ),
        "## Results",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {key} | {value:.4f} |" for key, value in metric_rows],
        *_per_label_table(info, results),
        "",
        "## Training",
        "",
        f"- Strategy: `{info['method']}` on a {info['modality']} backbone",
        params_line,
        f"- Training time: {runtime:.1f} s" if isinstance(runtime, (int, float)) else "",
        f"- Hardware: {info['hardware']}",
        "",
        "Arguments that differ from their defaults:",
        "",
        "```json",
        json.dumps(hyper, indent=2, sort_keys=True, default=str),
        "```",
    ]
    loss = info.get("loss")
    if isinstance(loss, dict) and loss.get("name"):
        body += [
            "",
            f"### Loss: `{loss['name']}`",
            "",
            "```json",
            json.dumps(loss.get("config", {}), indent=2, sort_keys=True, default=str),
            "```",
        ]
        if loss.get("citation"):
            body += ["", "```bibtex", loss["citation"].strip(), "```"]
    table = _loss_table(output_dir)
    if table:
        body += ["", "### Training log", "", table]
    body += [
        "",
        "## Usage",
        "",
        "```python",
        _usage(info, repo_id, is_adapter, base_reference),
        "```",
        "",
        "## Framework versions",
        "",
        *[f"- {name}: {version}" for name, version in info.get("versions", {}).items()],
        "",
    ]
    content = f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(line for line in body if line is not None)
    return ModelCard(content)
