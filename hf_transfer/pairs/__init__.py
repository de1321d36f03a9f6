"""Pair training: the backbone fine-tuned so that rows sharing labels embed close together and the others apart,
before the probe reads its features (SetFit's recipe, Tunstall et al. 2022, https://arxiv.org/abs/2209.11055).

`strategies.contrastive_probe` runs it; the pieces are the loss (`loss.py`), the order rows are batched in
(`batching.py`) and a thin `Trainer` subclass (`trainer.py`).
"""

from .arguments import PairArguments
from .batching import ClassBalancedOrder, row_label_tensor
from .loss import PairCosineLoss
from .trainer import PairTrainer, train_on_pairs

__all__ = ["PairArguments", "ClassBalancedOrder", "PairCosineLoss", "PairTrainer", "row_label_tensor", "train_on_pairs"]
