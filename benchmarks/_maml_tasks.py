"""The models and seeded synthetic tasks of the MAML benchmarks, shared by `maml_vs_higher.py` and
`maml_vmap_check.py`, so both measure the very same model on the very same episodes.

Imported as `_maml_tasks` from the scripts' own folder, like `_common`.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

__all__ = ["MODELS", "conv4", "tiny_bert", "make_model_and_tasks"]

MODELS = ("conv4", "tiny-bert")


def conv4(channels: int = 32, n_way: int = 5) -> nn.Module:
    """The MAML paper's Omniglot / miniImageNet network: 4 x (conv 3x3, BatchNorm, ReLU, max-pool 2)."""
    layers: list[nn.Module] = []
    in_channels = 1
    for _ in range(4):
        layers += [nn.Conv2d(in_channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(), nn.MaxPool2d(2)]
        in_channels = channels
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels, n_way))  # 28 -> 14 -> 7 -> 3 -> 1


def tiny_bert(n_way: int = 5) -> nn.Module:
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
        num_labels=n_way,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model = BertForSequenceClassification(config)
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    return model


def make_model_and_tasks(name: str, num_tasks: int, seed: int = 0):
    """(model, [(support inputs, support labels, query inputs, query labels)] * num_tasks)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    n_way = 5
    if name == "conv4":
        model, k, q = conv4(n_way=n_way), 1, 15

        def inputs(n):
            return {"input": torch.randn(n, 1, 28, 28, generator=g)}

    else:
        model, k, q = tiny_bert(n_way), 1, 5

        def inputs(n):
            return {
                "input_ids": torch.randint(1000, 29000, (n, 32), generator=g),
                "attention_mask": torch.ones(n, 32, dtype=torch.long),
            }

    def labels(m):
        return torch.arange(n_way).repeat_interleave(m)

    tasks = [(inputs(n_way * k), labels(k), inputs(n_way * q), labels(q)) for _ in range(num_tasks)]
    return model, tasks
