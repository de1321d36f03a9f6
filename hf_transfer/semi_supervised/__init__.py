"""Learning from unlabelled rows (`--unlabelled_file`, `--unlabelled_dir`, `--unlabelled_split_percentage` of
`recipes/finetune.py`): the probe strategies self-train on cached features (`self_training.py`), the fine-tuning
strategies train FixMatch-style on two views of each unlabelled row (`views.py`, `loss.py`, `trainer.py`). Every
pseudo-label passes the per-class thresholds of `hf_transfer.pseudo_labels`. A strategy's entry names its method
(`Strategy.semi_supervised`, an entry of `SEMI_SUPERVISED_METHODS`).
"""

from .arguments import SemiSupervisedArguments
from .methods import SEMI_SUPERVISED_METHODS, SemiSupervisedMethod
from .pool import UnlabelledPool, load_unlabelled_pool
from .self_training import ProbeSelfTraining, SelfTrainingReport, self_train_probe
from .trainer import FixMatchTrainer, fixmatch_arguments
from .views import TokenMasking, pool_views

__all__ = [
    "SEMI_SUPERVISED_METHODS",
    "FixMatchTrainer",
    "TokenMasking",
    "fixmatch_arguments",
    "pool_views",
    "ProbeSelfTraining",
    "SelfTrainingReport",
    "SemiSupervisedArguments",
    "SemiSupervisedMethod",
    "UnlabelledPool",
    "load_unlabelled_pool",
    "self_train_probe",
]
