"""Meta-learning: MAML and its variants (FOMAML, ANIL, Meta-SGD, meta-learned LoRA) for any backbone.

Split peft-style, one concern per module:
- `arguments.py`: what the user sets (`MAMLConfig`, `EpisodeArguments`).
- `model.py`: the `MAML` wrapper (functional inner loop, ANIL's fast path); `adapted_parameters.py` which parameters
  its inner loop adapts (and `zero_init_head`); `episode_mode.py` batch norm and dropout in episodes; `saving.py` the
  files a saved MAML adds to its model.
- `class_splits.py`: the disjoint class splits; `episodes.py` the N-way K-shot sampler.
- `evaluation.py`: scoring on episodes (adaptation and linear-probe baselines).
- `trainer.py`: the outer loop (`MAMLTrainer`: accelerate, best on meta-validation, meta-test); `checkpoints.py` its
  `checkpoint-N` folders (`Accelerator.save_state`); `tracking.py` its metrics in accelerate's trackers.
"""

from .adapted_parameters import zero_init_head
from .arguments import ADAPT_CHOICES, EpisodeArguments, MAMLConfig
from .class_splits import ClassSplits, default_class_split, split_classes, split_meta_rows
from .episodes import Episode, EpisodeDataset, EpisodeSampler, Task
from .evaluation import EpisodeResult, episode_accuracies, episode_results, mean_confidence_interval, probe_accuracies
from .model import MAML, MAMLOutput
from .trainer import MAMLTrainer

__all__ = [
    "ADAPT_CHOICES",
    "ClassSplits",
    "Episode",
    "EpisodeArguments",
    "EpisodeDataset",
    "EpisodeSampler",
    "MAML",
    "MAMLConfig",
    "MAMLOutput",
    "MAMLTrainer",
    "Task",
    "EpisodeResult",
    "episode_accuracies",
    "episode_results",
    "mean_confidence_interval",
    "probe_accuracies",
    "default_class_split",
    "split_classes",
    "split_meta_rows",
    "zero_init_head",
]
