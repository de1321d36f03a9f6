"""`FixMatchTrainer`: fine-tuning on labelled batches plus FixMatch's consistency loss on unlabelled ones (Sohn et al.
2020, https://arxiv.org/abs/2001.07685), with per-class thresholds (`hf_transfer.pseudo_labels`, FlexMatch) and
distribution alignment (ReMixMatch) of the weak view's predictions.

Each training step also draws `mu x batch size` pool rows; the weak view's prediction (no gradient) becomes the
pseudo-label where it passes its class's threshold, and the strong view is trained to predict it:
loss = supervised loss + lambda_u * l_u (`ConsistencyLoss`). Only the training loss changes: evaluation, saving and
the saved model are `TransferTrainer`'s. The thresholds' state and the pool's order are not checkpointed: a resumed
run starts them afresh.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, Callable, Optional

import torch
from torch.utils.data import DataLoader

from ..constants import SEMI_SUPERVISED_PREFIX
from ..finetuning.trainer import TransferTrainer
from ..pseudo_labels import ClassThresholds
from .loss import ConsistencyLoss
from .views import POOL_ROW, STRONG_PREFIX, PoolRows

__all__ = ["FixMatchTrainer", "fixmatch_arguments"]

logger = logging.getLogger(__name__)

PRIOR_MOMENTUM = 0.99  # the running mean of the weak view's class probabilities (distribution alignment)


class FixMatchTrainer(TransferTrainer):
    """A `TransferTrainer` whose training loss adds FixMatch's unlabelled consistency loss.

    Args:
        unlabelled: the pool, preprocessed as train is (text: tokenized; images: `two_view_image_transform`, which
            gives `pixel_values` and `strong_pixel_values`).
        thresholds: the per-class thresholds, sized to the pool.
        strong_view: text: the strong view of a tokenized batch (`TokenMasking`); None for images (the pool's
            transform gives it).
        unlabelled_weight: lambda_u.
        unlabelled_ratio: mu, pool rows per labelled row in a step.
        class_prior: (C,) the labelled rows' class distribution: single-label predictions on the pool are aligned
            to it; None for no alignment (multi-label).
        hidden_labels: the pool's true labels when known (a share of train set aside), to score the pseudo-labels.
    """

    def __init__(
        self,
        *args,
        unlabelled: Any,
        thresholds: ClassThresholds,
        strong_view: Optional[Callable[[dict], dict]] = None,
        unlabelled_weight: float = 1.0,
        unlabelled_ratio: int = 2,
        class_prior: Optional[torch.Tensor] = None,
        hidden_labels: Optional[torch.Tensor] = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.loss_is_scaled_for_ga = False  # both losses are batch means (see TransferTrainer's module docstring)
        self.pool = PoolRows(unlabelled, self.data_collator)
        self.thresholds = thresholds
        self.strong_view = strong_view
        self.unlabelled_weight = unlabelled_weight
        self.unlabelled_ratio = unlabelled_ratio
        self.consistency = ConsistencyLoss(multi_label=thresholds.multi_label)
        self.class_prior = class_prior
        self.hidden_labels = hidden_labels
        self._pool_mean: Optional[torch.Tensor] = None
        self._batches: Optional[Iterator[dict]] = None
        # Per pool row: its latest pseudo-label passed the threshold, and that label (for the report).
        self._kept = torch.zeros(len(self.pool), dtype=torch.bool)
        shape = (len(self.pool), thresholds.num_classes) if thresholds.multi_label else (len(self.pool),)
        self._targets = torch.zeros(shape)
        self._seen = 0
        self._kept_total = 0

    def _next_pool_batch(self) -> dict:
        if self._batches is None:
            # Each process of a distributed run reads its own pool batches (and keeps its own threshold state).
            generator = torch.Generator().manual_seed(self.args.seed + self.args.process_index)
            loader = DataLoader(
                self.pool,
                batch_size=self.unlabelled_ratio * self.args.per_device_train_batch_size,
                shuffle=True,
                generator=generator,
                collate_fn=self.pool.collate,
                drop_last=len(self.pool) > self.unlabelled_ratio * self.args.per_device_train_batch_size,
            )

            def forever():
                while True:
                    yield from loader

            self._batches = forever()
        return next(self._batches)

    def _align(self, probabilities: torch.Tensor) -> torch.Tensor:
        if self.class_prior is None:
            return probabilities
        batch_mean = probabilities.mean(dim=0)
        self._pool_mean = (
            batch_mean
            if self._pool_mean is None
            else PRIOR_MOMENTUM * self._pool_mean + (1 - PRIOR_MOMENTUM) * batch_mean
        )
        aligned = probabilities * self.class_prior.to(probabilities.device) / self._pool_mean.clamp(min=1e-8)
        return aligned / aligned.sum(dim=1, keepdim=True)

    def unlabelled_loss(self, model) -> torch.Tensor:
        """l_u of one pool batch: pseudo-labels from the weak view (no gradient), the strong view trained on them."""
        batch = self._next_pool_batch()
        rows = batch.pop(POOL_ROW)
        strong_inputs = {k[len(STRONG_PREFIX) :]: batch.pop(k) for k in list(batch) if k.startswith(STRONG_PREFIX)}
        weak = {k: v.to(self.args.device) for k, v in batch.items()}
        strong = (
            self.strong_view(weak)
            if self.strong_view is not None
            else {**weak, **{k: v.to(self.args.device) for k, v in strong_inputs.items()}}
        )
        with torch.no_grad():
            weak_logits = model(**weak).logits.float()
        if self.thresholds.multi_label:
            probabilities = torch.sigmoid(weak_logits)
        else:
            probabilities = self._align(torch.softmax(weak_logits, dim=-1))
        pseudo = self.thresholds.select(probabilities, rows=rows)
        kept_rows = pseudo.rows
        self._kept[rows] = kept_rows
        self._targets[rows] = pseudo.targets.float()
        self._seen += len(rows)
        self._kept_total += int(kept_rows.sum())
        strong_logits = model(**strong).logits
        return self.consistency(strong_logits, pseudo)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # A batch-mean supervised loss (no `num_items_in_batch`), to add the batch-mean l_u to.
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True)
        if model.training and self.unlabelled_weight > 0:
            loss = loss + self.unlabelled_weight * self.unlabelled_loss(model)
        return (loss, outputs) if return_outputs else loss

    def semi_supervised_metrics(self) -> dict[str, Any]:
        """The results' keys (`semi_supervised_*`): pool rows seen and kept, the rows whose latest pseudo-label passed
        its threshold, the final thresholds, and (hidden labels) those pseudo-labels' accuracy."""
        out: dict[str, Any] = {
            "unlabelled_rows_seen": self._seen,
            "mask_rate": self._kept_total / self._seen if self._seen else 0.0,
            "pseudo_labelled_samples": int(self._kept.sum()),
            "thresholds": [round(t, 4) for t in self.thresholds.thresholds().tolist()],
        }
        if self.hidden_labels is not None and self._kept.any():
            truth = self.hidden_labels[self._kept].float()
            out["pseudo_label_accuracy"] = float((self._targets[self._kept] == truth).float().mean())
        return {f"{SEMI_SUPERVISED_PREFIX}{key}": value for key, value in out.items()}


def fixmatch_arguments(args: Any, pool: Any, num_labels: int, train: Any, task: str) -> dict[str, Any]:
    """`FixMatchTrainer`'s keyword arguments from the run's `SemiSupervisedArguments`, `UnlabelledPool`, the number
    of classes or labels, the labelled `train` rows (their class distribution) and the task."""
    from ..pairs.batching import row_label_tensor
    from ..tasks import TASKS

    multi_label = not TASKS.get(task).one_class_per_row
    labels = row_label_tensor(train["label"], num_labels)
    prior = None
    if not multi_label and args.distribution_alignment:
        prior = torch.bincount(labels, minlength=num_labels).float() / len(labels)
    return dict(
        thresholds=ClassThresholds(
            num_classes=num_labels,
            num_rows=len(pool.rows),
            threshold=args.pseudo_label_threshold,
            multi_label=multi_label,
            adaptive=args.adaptive,
            min_threshold=args.pseudo_label_min_threshold,
        ),
        unlabelled_weight=args.unlabelled_weight,
        unlabelled_ratio=args.unlabelled_ratio,
        class_prior=prior,
        hidden_labels=row_label_tensor(pool.rows["label"], num_labels) if pool.has_hidden_labels else None,
    )
