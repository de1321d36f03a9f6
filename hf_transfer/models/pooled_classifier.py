"""A text classifier that pools the way its backbone was trained, saved in sentence-transformers' format.

Stock `AutoModelForSequenceClassification` heads read a fixed token: BERT's pooler (first token, dense, tanh),
RoBERTa's first token. A sentence-embedding checkpoint (all-MiniLM-L6-v2, mean pooling) was trained for another
embedding, and no stock BERT class can mean-pool. `PooledClassifier` is `AutoModel` + `hf_transfer.models.pooling` +
one Linear; it trains with `Trainer`, peft and the probe like any classification model (its head is the
`classifier` Linear), and `save_pooled_classifier` writes it as a sentence-transformers model,
Transformer -> Pooling -> Dense (the classifier, identity activation), so it loads without custom code:

    from sentence_transformers import SentenceTransformer
    model = SentenceTransformer("outputs/minilm-bbc-probe")
    logits = model.encode(texts)                                  # (N, num_labels)
    labels = [model[0].auto_model.config.id2label[i] for i in logits.argmax(-1)]

Trade-off: such a folder is not a transformers classification checkpoint, so `pipeline("text-classification")`
and `AutoModelForSequenceClassification` do not apply to it (`--pooling head` keeps the stock format); a LoRA run
is saved merged (sentence-transformers loads the Dense head from its own module, not from a peft adapter).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from .pooling import pool_tokens
from .sentence_transformers_format import IDENTITY, write_sentence_transformers_files

__all__ = [
    "PooledClassifier",
    "load_pooled_classifier",
    "load_saved_pooled_classifier",
    "save_pooled_classifier",
    "unwrap_pooled_classifier",
]


class PooledClassifier(nn.Module):
    """`backbone` (an `AutoModel`), pooled with `pooling` (e.g. `mean`), then a new `classifier` Linear.

    `config` is the backbone's, carrying `id2label` / `label2id`, so what reads a classification model's config
    (Trainer, the model card, peft's target defaults) works unchanged.
    """

    base_model_prefix = "backbone"

    def __init__(
        self, backbone: PreTrainedModel, pooling: str, label_names: list[str], problem_type: Optional[str] = None
    ):
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        self.config = backbone.config
        self.config.id2label = dict(enumerate(label_names))
        self.config.label2id = {name: i for i, name in enumerate(label_names)}
        self.config.num_labels = len(label_names)
        if problem_type is not None:
            self.config.problem_type = problem_type
        self.classifier = nn.Linear(self.config.hidden_size, len(label_names))
        nn.init.normal_(self.classifier.weight, std=getattr(self.config, "initializer_range", 0.02))
        nn.init.zeros_(self.classifier.bias)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(
        self,
        input_ids: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        token_type_ids: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
    ) -> SequenceClassifierOutput:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        hidden = self.backbone(**inputs).last_hidden_state  # (B, T, D)
        logits = self.classifier(pool_tokens(hidden, attention_mask, self.pooling))  # (B, C)
        if labels is None:
            loss = None
        elif self.config.problem_type == "regression":
            loss = nn.functional.mse_loss(
                logits.view(labels.shape[0], -1).float(), labels.view(labels.shape[0], -1).float()
            )
        elif self.config.problem_type == "multi_label_classification":
            loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float())
        else:
            loss = nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


def load_pooled_classifier(
    path: str, pooling: str, label_names: list[str], problem_type: Optional[str] = None, **from_pretrained_kwargs: Any
) -> PooledClassifier:
    """The backbone at `path` (`AutoModel`, without the pooler layer it would not use) under a new classifier."""
    from transformers import AutoModel

    from .loading import readable_weights

    with readable_weights(path):
        try:  # a pooler nobody reads gets no gradient, which DDP would report as an unused parameter
            backbone = AutoModel.from_pretrained(path, add_pooling_layer=False, **from_pretrained_kwargs)
        except TypeError:
            backbone = AutoModel.from_pretrained(path, **from_pretrained_kwargs)
    return PooledClassifier(backbone, pooling, label_names, problem_type)


def load_saved_pooled_classifier(directory: str | Path) -> PooledClassifier:
    """The `PooledClassifier` a folder written by `save_pooled_classifier` holds, with the parameter names it trained
    under (what `hf_transfer.meta.MAML.from_pretrained` adapts by name); for inference `SentenceTransformer(dir)`
    needs no toolkit code."""
    from safetensors.torch import load_file
    from transformers import AutoModel

    from .pooling import read_sentence_transformers_pooling

    directory = Path(directory)
    pooling = read_sentence_transformers_pooling(str(directory))
    dense = sorted(directory.glob("*_Dense"))
    if pooling is None or len(dense) != 1:
        raise ValueError(f"{directory} is not a classifier saved by save_pooled_classifier (one Pooling, one Dense).")
    backbone = AutoModel.from_pretrained(directory)
    labels = [backbone.config.id2label[i] for i in range(len(backbone.config.id2label))]
    model = PooledClassifier(backbone, pooling, labels, getattr(backbone.config, "problem_type", None))
    state = load_file(str(dense[0] / "model.safetensors"))
    model.classifier.load_state_dict({key.removeprefix("linear."): value for key, value in state.items()})
    return model


def unwrap_pooled_classifier(model: nn.Module) -> Optional[PooledClassifier]:
    """The `PooledClassifier` inside `model` (itself, or under peft), or None."""
    get_base = getattr(model, "get_base_model", None)
    inner = get_base() if callable(get_base) else model
    return inner if isinstance(inner, PooledClassifier) else None


def save_pooled_classifier(
    model: nn.Module,
    tokenizer: Any,
    directory: str | Path,
    max_seq_length: int,
    *,
    adapter_subdir: Optional[str] = None,
) -> None:
    """Write `model` (a `PooledClassifier`, or a peft model around one: merged first) as a sentence-transformers
    folder whose `encode` returns the classifier's logits.

    `adapter_subdir`: a peft model's adapter is also saved there, unmerged (MAML adapts a meta-learned LoRA
    initialisation, which merging would lose); it loads onto `load_pooled_classifier(base, ...)`.
    """
    get_base = getattr(model, "get_base_model", None)
    if callable(get_base):  # LoRA: fold the adapters in, keep the trained head copies
        import copy

        if adapter_subdir is not None:
            model.save_pretrained(Path(directory) / adapter_subdir)
        model = copy.deepcopy(model).merge_and_unload()
    assert isinstance(model, PooledClassifier), type(model)
    model.backbone.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    write_sentence_transformers_files(
        directory,
        embedding_dim=model.config.hidden_size,
        pooling=model.pooling,
        max_seq_length=max_seq_length,
        dense=[(model.classifier, IDENTITY)],
        similarity_fn_name="dot",
    )
