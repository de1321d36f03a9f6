"""Alignment losses for unsupervised domain adaptation: DANN, Deep CORAL, multi-kernel MMD, MCC and CDAN.

Each loss is a small `nn.Module` that takes a batch of model outputs from both domains and their domain
labels (0 = source, 1 = target) and returns a scalar to *add* to the task loss. Its `inputs` attribute says
which outputs, in order: `("features",)` (the default: DANN, CORAL, MMD), `("logits",)` (MCC) or
`("features", "logits")` (CDAN). The features are what the classifier head sees (`DomainAdaptationModel`
captures them with a forward pre-hook on the head), so no loss ever needs to know the backbone.

How strongly the backbone is pushed towards domain-invariant features is one coefficient c, set by the
trainer (`--alignment_weight` times the warm-up `ganin_coefficient(p)` of training progress p):

- `CORALLoss`, `MMDLoss`: the trainer adds `c * loss`;
- `MCCLoss`: likewise, on the target logits;
- `DANNLoss`, `CDANLoss` (`adversarial = True`): the trainer sets `loss.coefficient = c`, the scale of the reversed
  gradient, and adds the loss unscaled, so the domain discriminator always learns at full strength.

References:
    Ganin et al. 2016, "Domain-Adversarial Training of Neural Networks", JMLR 17. https://arxiv.org/abs/1505.07818
    Sun & Saenko 2016, "Deep CORAL: Correlation Alignment for Deep Domain Adaptation". https://arxiv.org/abs/1607.01719
    Long et al. 2015, "Learning Transferable Features with Deep Adaptation Networks" (DAN). https://arxiv.org/abs/1502.02791
    Gretton et al. 2012, "A Kernel Two-Sample Test", JMLR 13.
    Jin et al. 2020, "Minimum Class Confusion for Versatile Domain Adaptation" (MCC). https://arxiv.org/abs/1912.03699
    Long et al. 2018, "Conditional Adversarial Domain Adaptation" (CDAN). https://arxiv.org/abs/1705.10667

One loss per module, as in sentence-transformers' `losses/`: `dann`, `coral`, `mmd`, `mcc`, `cdan`; `gradient_reversal` holds the
reversal layer and its schedule, `factory` builds the loss a method names.
"""

from .cdan import CDANLoss, multilinear_map
from .coral import CORALLoss
from .dann import DANNLoss
from .factory import ALIGNMENT_METHODS, create_alignment_loss
from .gradient_reversal import GradientReversal, ganin_coefficient, grad_reverse
from .mcc import MCCLoss
from .mmd import MMDLoss

__all__ = [
    "ALIGNMENT_METHODS",
    "GradientReversal",
    "grad_reverse",
    "ganin_coefficient",
    "DANNLoss",
    "CORALLoss",
    "MMDLoss",
    "MCCLoss",
    "CDANLoss",
    "multilinear_map",
    "create_alignment_loss",
]
