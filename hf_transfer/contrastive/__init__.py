"""Contrastive pretraining: learn a transferable representation from unlabelled (or weakly paired) data.

- `arguments`: `ContrastiveArguments` (loss, views, temperature, projection head, GradCache, augmentations).
- `losses`: `NTXentLoss` (SimCLR / SimCSE), `InBatchNegativesLoss` (InfoNCE over pairs), `SupConLoss`,
  with a fixed or learnable (`Temperature`) temperature and a cross-process gather with gradients.
- `augmentations`: SimCLR image augmentations (kornia batched, or torchvision per image).
- `views`: the collators that make two views per sample (augmented images, dropout duplicates, pairs).
- `model`: `ContrastiveModel` (backbone + projection head used only while pretraining).
- `trainer`: `ContrastiveTrainer`, a `transformers.Trainer` subclass (GradCache optional).
- `evaluation`: `linear_evaluation`, a linear probe on the trained pooled embedding (SimCLR's protocol).
- `export`: saves the backbone for `AutoModel` and `SentenceTransformer` (without importing the latter).

The result is transferred with `recipes/finetune.py --model_name_or_path <output_dir>`.
"""

from .arguments import ContrastiveArguments
from .augmentations import BatchedSimCLRAugmentation, SimCLRAugmentation
from .data import load_contrastive_dataset
from .distributed import gather_with_grad
from .evaluation import linear_evaluation
from .export import save_backbone, write_sentence_transformers_files
from .gradcache import cached_contrastive_loss
from .losses import InBatchNegativesLoss, NTXentLoss, SupConLoss, Temperature, create_contrastive_loss
from .model import ContrastiveModel, ProjectionHead, create_backbone_from_config
from .trainer import ContrastiveTrainer
from .views import ContrastiveImageCollator, ContrastiveTextCollator, create_contrastive_collator

__all__ = [
    "ContrastiveArguments",
    "ContrastiveModel",
    "ContrastiveTrainer",
    "ProjectionHead",
    "create_backbone_from_config",
    "Temperature",
    "NTXentLoss",
    "InBatchNegativesLoss",
    "SupConLoss",
    "create_contrastive_loss",
    "SimCLRAugmentation",
    "BatchedSimCLRAugmentation",
    "ContrastiveImageCollator",
    "ContrastiveTextCollator",
    "create_contrastive_collator",
    "load_contrastive_dataset",
    "linear_evaluation",
    "gather_with_grad",
    "cached_contrastive_loss",
    "save_backbone",
    "write_sentence_transformers_files",
]
