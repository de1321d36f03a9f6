"""The usage snippet of a model card: how to load what the run saved (a stock transformers model, a peft adapter, a
sentence-transformers folder, a backbone without a head) and read predictions the way the task decides them."""

from __future__ import annotations

from .modalities import MODALITIES
from .run_record import RunRecord
from .tasks import TASKS

__all__ = ["usage_snippet"]

_THRESHOLDS_USAGE = (
    "\n\n# A label is predicted when its sigmoid probability reaches its decision threshold, chosen on validation\n"
    "# and saved with the model (decision_thresholds.json)\n"
    "import json, torch\nfrom huggingface_hub import hf_hub_download\n\n"
    'thresholds = json.load(open(hf_hub_download("{repo_id}", "decision_thresholds.json")))["thresholds"]\n'
    "{logits_line}\n"
    "labels = [[name for i, name in id2label.items() if p[i] >= thresholds[name]] for p in torch.sigmoid(logits)]"
)


def _processor_class(record: RunRecord) -> str:
    return MODALITIES.get(record.modality).processor_class_name


def _backbone_usage(record: RunRecord, repo_id: str) -> str:
    """A pretrained backbone (contrastive_pretrain): no head."""
    processor = _processor_class(record)
    snippet = (
        f"from transformers import AutoModel, {processor}\n\n"
        f'model = AutoModel.from_pretrained("{repo_id}")\n'
        f'processor = {processor}.from_pretrained("{repo_id}")'
    )
    if record.sentence_transformers:
        snippet += (
            "\n\n# or, as sentence embeddings:\nfrom sentence_transformers import SentenceTransformer\n\n"
            f'model = SentenceTransformer("{repo_id}")\nembeddings = model.encode(["a sentence"])'
        )
    return snippet


def _dual_encoder_usage(record: RunRecord, repo_id: str) -> str:
    """An aligned image-text dual encoder (`recipes/align.py`): zero-shot image classification."""
    template = (record.hyperparameters or {}).get("caption_template", "a photo of a {}.")
    labels = [str(name) for name in record.label_names[:3]] or ["a cat", "a dog"]
    return (
        "from transformers import pipeline\n\n"
        f'classifier = pipeline("zero-shot-image-classification", model="{repo_id}")\n'
        f'scores = classifier("image.png", candidate_labels={labels}, hypothesis_template="{template}")'
    )


def _cross_modal_usage(repo_id: str) -> str:
    """A text body classifying images (`recipes/cross_modal.py`): its own model class, registered by hf_transfer or
    loaded from the code saved with it."""
    return (
        "import hf_transfer.cross_modal  # registers the model class; without hf_transfer pass trust_remote_code=True\n"
        "from transformers import pipeline\n\n"
        f'classifier = pipeline("image-classification", model="{repo_id}")\n'
        'predictions = classifier("image.png")  # [{"label": ..., "score": ...}, ...]'
    )


def _sentence_transformers_usage(record: RunRecord, repo_id: str) -> str:
    """A classifier on a trained pooling (`hf_transfer.models.pooled_classifier`), in sentence-transformers' format."""
    task = TASKS.get(record.task)
    load = f'from sentence_transformers import SentenceTransformer\n\nmodel = SentenceTransformer("{repo_id}")\n'
    if task.decision == "value":
        return load + 'predictions = model.encode(["a sentence"])[:, 0]  # in the target\'s own units'
    if task.decision == "thresholds":
        return (
            load
            + "id2label = model[0].auto_model.config.id2label"
            + _THRESHOLDS_USAGE.format(
                repo_id=repo_id, logits_line='logits = model.encode(["a sentence"], convert_to_tensor=True)'
            )
        )
    return (
        load + 'logits = model.encode(["a sentence"])  # (N, num_labels)\n'
        "labels = [model[0].auto_model.config.id2label[int(i)] for i in logits.argmax(-1)]"
    )


def usage_snippet(record: RunRecord, repo_id: str, is_adapter: bool, base_reference: str) -> str:
    """The Python that loads the saved model from `repo_id` and predicts; an adapter loads onto `base_reference`."""
    if record.saved_as == "backbone":
        return _backbone_usage(record, repo_id)
    if record.saved_as == "dual_encoder":
        return _dual_encoder_usage(record, repo_id)
    if record.saved_as == "cross_modal":
        return _cross_modal_usage(repo_id)
    if record.sentence_transformers:
        return _sentence_transformers_usage(record, repo_id)
    task = TASKS.get(record.task)
    auto = task.model_class(record.modality)
    processor = _processor_class(record)
    example = f'{MODALITIES.get(record.modality).card_example}, return_tensors="pt"'
    thresholds = (
        "\nid2label = model.config.id2label"
        + _THRESHOLDS_USAGE.format(
            repo_id=repo_id, logits_line=f"logits = model(**processor({example})).logits.detach()"
        )
        if task.decision == "thresholds"
        else ""
    )
    if is_adapter:
        id2label = {i: n for i, n in enumerate(record.label_names)}
        problem_type = task.problem_type
        return (
            f"from peft import PeftModel\nfrom transformers import {auto}, {processor}\n\n"
            f'base = {auto}.from_pretrained(\n    "{base_reference}", num_labels={len(id2label)}, id2label={id2label},\n'
            + (f'    problem_type="{problem_type}",\n' if problem_type else "")
            + "    ignore_mismatched_sizes=True,\n)\n"
            f'model = PeftModel.from_pretrained(base, "{repo_id}")\n'
            f'processor = {processor}.from_pretrained("{repo_id}")' + thresholds
        )
    if task.pipeline_usage is not None:
        return task.pipeline_usage.format(repo_id=repo_id)
    return (
        f"from transformers import {auto}, {processor}\n\n"
        f'model = {auto}.from_pretrained("{repo_id}")\n'
        f'processor = {processor}.from_pretrained("{repo_id}")' + thresholds
    )
