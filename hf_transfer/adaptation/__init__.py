"""Unsupervised domain adaptation: labelled source data, unlabelled target data, same task.

Split peft-style: `arguments.py` is what the user sets, `methods.py` the registry of `--method` values, `losses/` holds the alignment losses, one per module (DANN, Deep
CORAL, multi-kernel MMD, MCC, CDAN), `data.py` pairs source and target rows into training batches, `model.py` holds
the task model and the alignment loss as one module, `trainer.py` the `Trainer` subclass, `domains.py` loads a
domain and checks that two pair up, `diagnostics.py` the proxy A-distance.
"""

from .arguments import (
    METHODS,
    DomainAdaptationArguments,
    SourceDataArguments,
    TargetDataArguments,
    check_transfer_strategy,
    create_prefixed_data_arguments,
    prefix_flags,
)
from .data import DomainPairCollator, DomainPairDataset
from .diagnostics import MIN_A_DISTANCE_ROWS, ProxyADistance, compute_proxy_a_distance, held_out_split, proxy_a_distance
from .domains import align_domains, load_domain_dataset
from .losses import (
    ALIGNMENT_METHODS,
    CDANLoss,
    CORALLoss,
    DANNLoss,
    GradientReversal,
    MCCLoss,
    MMDLoss,
    create_alignment_loss,
    ganin_coefficient,
    grad_reverse,
)
from .methods import ADAPTATION_METHODS, AdaptationMethod
from .model import DomainAdaptationModel, DomainAdaptationOutput
from .trainer import ALIGNMENT_STATE_NAME, DomainAdaptationTrainer

__all__ = [
    "ADAPTATION_METHODS",
    "AdaptationMethod",
    "ALIGNMENT_METHODS",
    "ALIGNMENT_STATE_NAME",
    "METHODS",
    "CDANLoss",
    "CORALLoss",
    "DANNLoss",
    "DomainAdaptationArguments",
    "DomainAdaptationModel",
    "DomainAdaptationOutput",
    "DomainAdaptationTrainer",
    "DomainPairCollator",
    "DomainPairDataset",
    "GradientReversal",
    "MCCLoss",
    "MMDLoss",
    "ProxyADistance",
    "SourceDataArguments",
    "TargetDataArguments",
    "align_domains",
    "check_transfer_strategy",
    "MIN_A_DISTANCE_ROWS",
    "compute_proxy_a_distance",
    "create_alignment_loss",
    "create_prefixed_data_arguments",
    "prefix_flags",
    "ganin_coefficient",
    "grad_reverse",
    "held_out_split",
    "load_domain_dataset",
    "proxy_a_distance",
]
