"""Fine-tuning strategies: full, LoRA (peft) and LP-FT, on top of `transformers.Trainer`.

Split peft-style: `arguments.py` is what the user sets, `lora.py` wraps models in adapters,
`optim.py` builds parameter groups, `trainer.py` holds the `Trainer` subclass; `strategies.py` is the registry of
`--strategy` values (which stages each runs).
"""

from .arguments import STRATEGIES, LoraArguments, SearchArguments, TransferArguments
from .lora import create_lora_model, resolve_lora_target_modules
from .optim import create_param_groups, layer_id_for_parameter
from .strategies import FINETUNE_METHODS, Strategy
from .trainer import TransferTrainer

__all__ = [
    "FINETUNE_METHODS",
    "STRATEGIES",
    "Strategy",
    "LoraArguments",
    "SearchArguments",
    "TransferArguments",
    "TransferTrainer",
    "create_lora_model",
    "create_param_groups",
    "layer_id_for_parameter",
    "resolve_lora_target_modules",
]
