"""Contrastive losses on embeddings: NT-Xent (SimCLR / SimCSE), paired in-batch negatives, SupCon.

Every loss is a small `nn.Module` whose `forward(anchors, positives, labels=None)` takes embeddings
(never a backbone), optionally gathers them from all processes (`gather_across_processes`), and hands
off to `compute_loss_from_embeddings`, a function of embeddings only that is easy to test. Similarities
are cosines; logits are `cos / temperature`. sentence-transformers calls the same factor `scale`:
`scale = 1 / temperature`, so its `scale=20` is `temperature=0.05` here.

With several processes each process computes the loss of its own anchors against the candidates of
*all* processes (its local rows sit at `offset` in the gathered batch); the mean of these per-process
losses, which DDP's gradient averaging optimises, is exactly the loss of one process holding the whole
global batch.

References:
    - Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations" (SimCLR,
      NT-Xent), https://arxiv.org/abs/2002.05709
    - van den Oord et al. 2018, "Representation Learning with Contrastive Predictive Coding" (InfoNCE),
      https://arxiv.org/abs/1807.03748
    - Gao et al. 2021, "SimCSE: Simple Contrastive Learning of Sentence Embeddings",
      https://arxiv.org/abs/2104.08821
    - Khosla et al. 2020, "Supervised Contrastive Learning" (SupCon), https://arxiv.org/abs/2004.11362
    - Radford et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision" (CLIP's
      learnable, clamped logit scale), https://arxiv.org/abs/2103.00020
    - lightly's `NTXentLoss` (lightly/loss/ntx_ent_loss.py), sentence-transformers' `MultipleNegativesRankingLoss`.

One loss per module, as in sentence-transformers' `losses/`: `ntxent`, `in_batch_negatives`, `supcon`; their shared
`base` (temperature, gather) and `temperature`; `registry` names them (one entry per loss), `factory` builds the one
`ContrastiveArguments` names.
"""

from ...constants import MIN_TEMPERATURE
from .base import ContrastiveLoss
from .factory import create_contrastive_loss
from .in_batch_negatives import InBatchNegativesLoss, in_batch_negatives_loss
from .ntxent import NTXentLoss, ntxent_loss
from .registry import CONTRASTIVE_LOSSES, ContrastiveLossEntry
from .supcon import SupConLoss, supcon_loss
from .temperature import Temperature

__all__ = [
    "MIN_TEMPERATURE",
    "ContrastiveLoss",
    "Temperature",
    "NTXentLoss",
    "InBatchNegativesLoss",
    "SupConLoss",
    "ntxent_loss",
    "in_batch_negatives_loss",
    "supcon_loss",
    "create_contrastive_loss",
    "CONTRASTIVE_LOSSES",
    "ContrastiveLossEntry",
]
