"""sentence-transformers' folder format, written without importing that package (it is no dependency).

A folder that `SentenceTransformer(dir)` loads: the transformer at the root (`save_pretrained`'s files),
`modules.json` listing Transformer -> Pooling [-> Dense ...] [-> Normalize], `1_Pooling/config.json`,
`sentence_bert_config.json` and `config_sentence_transformers.json`. Dense modules are `(nn.Linear, activation)`
pairs, the activation named by its torch class (`torch.nn.modules.activation.Tanh`, `...linear.Identity`), which
sentence-transformers loads without remote code. Used for contrastively pretrained backbones and for classifiers
that pool the way a stock transformers head cannot (`hf_transfer.models.pooled_classifier`).
"""

from __future__ import annotations

import importlib.metadata as md
import json
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors.torch import save_file
from torch import nn

from .pooling_modes import POOLING_MODES

__all__ = ["IDENTITY", "TANH", "write_sentence_transformers_files"]

IDENTITY = "torch.nn.modules.linear.Identity"
TANH = "torch.nn.modules.activation.Tanh"


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def _versions() -> dict[str, str]:
    import transformers

    versions = {"transformers": transformers.__version__, "pytorch": torch.__version__}
    try:
        versions["sentence_transformers"] = md.version("sentence-transformers")
    except md.PackageNotFoundError:
        versions["sentence_transformers"] = "5.0.0"  # the format written here is read by 2.x to 6.x
    return versions


def write_sentence_transformers_files(
    output_dir: str | Path,
    *,
    embedding_dim: int,
    pooling: str,
    max_seq_length: int,
    dense: Sequence[tuple[nn.Linear, str]] = (),
    normalize: bool = False,
    similarity_fn_name: str = "cosine",
) -> None:
    """Describe the transformer saved at `output_dir` as a sentence-transformers model (see the module docstring).

    `pooling` is a mode of `hf_transfer.models.pooling_modes.POOLING_MODES` with a sentence-transformers key (for
    `pooler`, export the pooler as a Dense module).
    """
    output_dir = Path(output_dir)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    _write_json(
        output_dir / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": embedding_dim,
            **{
                mode.sentence_transformers_key: mode.name == pooling
                for mode in POOLING_MODES.entries()
                if mode.sentence_transformers_key is not None
            },
        },
    )
    for linear, activation in dense:
        index = len(modules)
        folder = output_dir / f"{index}_Dense"
        _write_json(
            folder / "config.json",
            {
                "in_features": linear.in_features,
                "out_features": linear.out_features,
                "bias": linear.bias is not None,
                "activation_function": activation,
            },
        )
        state = {"linear.weight": linear.weight.detach().float().cpu().contiguous()}
        if linear.bias is not None:
            state["linear.bias"] = linear.bias.detach().float().cpu().contiguous()
        save_file(state, str(folder / "model.safetensors"))
        modules.append(
            {"idx": index, "name": str(index), "path": folder.name, "type": "sentence_transformers.models.Dense"}
        )
    if normalize:
        index = len(modules)
        modules.append(
            {
                "idx": index,
                "name": str(index),
                "path": f"{index}_Normalize",
                "type": "sentence_transformers.models.Normalize",
            }
        )
    _write_json(output_dir / "modules.json", modules)
    _write_json(output_dir / "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": False})
    _write_json(
        output_dir / "config_sentence_transformers.json",
        {
            "__version__": _versions(),
            "prompts": {},
            "default_prompt_name": None,
            "similarity_fn_name": similarity_fn_name,
        },
    )
