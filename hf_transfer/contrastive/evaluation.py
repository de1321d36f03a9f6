"""Linear evaluation of the trained embedding: the standard protocol of SimCLR / SimCSE papers.

`recipes/finetune.py --strategy linear_probe` probes what a stock classification head reads (BERT's
pooler output, a ViT's CLS token). `linear_evaluation` probes the pooled embedding that contrastive
pretraining actually trained (`Backbone.embed`: mean pooling for text by default), with the same
`fit_linear_probe` (L2 chosen on validation), so a run can report its representation before and after
pretraining on the labelled splits it already loaded.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import torch
from datasets import DatasetDict
from torch.utils.data import DataLoader

from ..metrics import compute_classification_metrics
from ..models import Backbone
from ..probing import DEFAULT_L2_GRID, fit_linear_probe
from ..processing import create_collator, preprocess_dataset

__all__ = ["embed_dataset", "linear_evaluation"]

logger = logging.getLogger(__name__)


@torch.no_grad()
def embed_dataset(backbone: Backbone, dataset: Any, batch_size: int = 64, device: Optional[torch.device] = None):
    """Pooled embeddings (N, D) and labels (N,) of a processed split, in eval mode (no dropout)."""
    device = device or next(backbone.model.parameters()).device
    was_training = backbone.training
    backbone.eval()
    collator = create_collator(backbone.processor, backbone.modality)
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collator)
    features, labels = [], []
    for batch in loader:
        labels.append(batch.pop("labels"))
        features.append(backbone.embed(**{k: v.to(device) for k, v in batch.items()}).float().cpu())
    backbone.train(was_training)
    return torch.cat(features), torch.cat(labels)


def linear_evaluation(
    backbone: Backbone,
    raw_datasets: DatasetDict,
    max_seq_length: int = 128,
    batch_size: int = 64,
    max_iter: int = 200,
) -> dict[str, float]:
    """Fit a linear probe on `train` embeddings (L2 chosen on `validation`); accuracy on every split.

    Returns `{split}_accuracy` and `{split}_f1` (macro) for train, validation and test (when the data has
    it), and the chosen `l2`. Needs a `label` column.
    """
    processed = preprocess_dataset(raw_datasets, backbone.processor, backbone.modality, max_seq_length)
    embedded = {split: embed_dataset(backbone, ds, batch_size) for split, ds in processed.items()}
    num_classes = raw_datasets["train"].features["label"].num_classes
    probe = fit_linear_probe(*embedded["train"], *embedded["validation"], num_classes, DEFAULT_L2_GRID, max_iter)
    scores: dict[str, float] = {"l2": probe.l2}
    for split, (features, labels) in embedded.items():
        # Macro-F1 too: on skewed labels a probe that predicts the majority class has a fine-looking accuracy.
        split_scores = compute_classification_metrics(probe.predict(features).numpy(), labels.numpy())
        scores.update({f"{split}_{name}": float(value) for name, value in split_scores.items()})
    logger.info("Linear evaluation of the %s embedding: %s", backbone.pooling, scores)
    return scores
