"""Feature-alignment losses for unsupervised domain adaptation: DANN, Deep CORAL and multi-kernel MMD.

Each loss is a small `nn.Module` that takes a batch of features from both domains and their domain
labels (0 = source, 1 = target) and returns a scalar to *add* to the task loss. They act on whatever
features the classifier head sees (`DomainAdaptationTrainer` captures them with a forward pre-hook on
the head), so they never need to know the backbone.

How strongly the backbone is pushed towards domain-invariant features is one coefficient c, set by the
trainer (`--alignment_weight` times the warm-up `ganin_coefficient(p)` of training progress p):

- `CORALLoss`, `MMDLoss`: the trainer adds `c * loss`;
- `DANNLoss` (`adversarial = True`): the trainer sets `loss.coefficient = c`, the scale of the reversed
  gradient, and adds the loss unscaled, so the domain discriminator always learns at full strength.

References:
    Ganin et al. 2016, "Domain-Adversarial Training of Neural Networks", JMLR 17. https://arxiv.org/abs/1505.07818
    Sun & Saenko 2016, "Deep CORAL: Correlation Alignment for Deep Domain Adaptation". https://arxiv.org/abs/1607.01719
    Long et al. 2015, "Learning Transferable Features with Deep Adaptation Networks" (DAN). https://arxiv.org/abs/1502.02791
    Gretton et al. 2012, "A Kernel Two-Sample Test", JMLR 13.

One loss per module, as in sentence-transformers' `losses/`: `dann`, `coral`, `mmd`; `gradient_reversal` holds the
reversal layer and its schedule, `factory` builds the loss a method names.
"""

from .coral import CORALLoss
from .dann import DANNLoss
from .factory import ALIGNMENT_METHODS, create_alignment_loss
from .gradient_reversal import GradientReversal, ganin_coefficient, grad_reverse
from .mmd import MMDLoss

__all__ = [
    "ALIGNMENT_METHODS",
    "GradientReversal",
    "grad_reverse",
    "ganin_coefficient",
    "DANNLoss",
    "CORALLoss",
    "MMDLoss",
    "create_alignment_loss",
]
