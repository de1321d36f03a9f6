"""The contrastive losses by name (`--contrastive_loss`): one entry each, holding what differs between them.

`ContrastiveArguments` checks names and combinations here (without importing the losses); `create_contrastive_loss`
builds the entry's module. Adding a loss is its module plus one entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..._registry import LazyReference, Registry

__all__ = ["ContrastiveLossEntry", "CONTRASTIVE_LOSSES"]


@dataclass(frozen=True)
class ContrastiveLossEntry:
    """A contrastive loss.

    Args:
        name: its `--contrastive_loss` value.
        description: one line for `--help` and the docs.
        loss_class: the `nn.Module` (takes temperature / gather settings).
        needs_labels: positives come from labels (the data needs a label column).
        accepts_pairs: an (anchor, positive) column pair (`--pair_column`) can give its positives.
        has_symmetric_option: takes `symmetric=` (`--symmetric`: the loss in both directions).
    """

    name: str
    description: str
    loss_class: LazyReference
    needs_labels: bool = False
    accepts_pairs: bool = True
    has_symmetric_option: bool = False


CONTRASTIVE_LOSSES: Registry[ContrastiveLossEntry] = Registry("contrastive loss", "--contrastive_loss")
CONTRASTIVE_LOSSES.register(
    ContrastiveLossEntry(
        name="ntxent",
        description="SimCLR / SimCSE NT-Xent over the 2N views (2N - 2 negatives per view)",
        loss_class=LazyReference("hf_transfer.contrastive.losses.ntxent:NTXentLoss"),
    )
)
CONTRASTIVE_LOSSES.register(
    ContrastiveLossEntry(
        name="in_batch",
        description="InfoNCE over (anchor, positive) pairs, sentence-transformers' MultipleNegativesRankingLoss "
        "(N - 1 negatives)",
        loss_class=LazyReference("hf_transfer.contrastive.losses.in_batch_negatives:InBatchNegativesLoss"),
        has_symmetric_option=True,
    )
)
CONTRASTIVE_LOSSES.register(
    ContrastiveLossEntry(
        name="supcon",
        description="supervised contrastive loss (Khosla et al. 2020): rows of one class are positives; needs labels",
        loss_class=LazyReference("hf_transfer.contrastive.losses.supcon:SupConLoss"),
        needs_labels=True,
        accepts_pairs=False,
    )
)
