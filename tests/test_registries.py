"""The registries of kinds (strategies, adaptation methods, contrastive losses, pooling modes, tasks, modalities): an
unknown name is one error listing the known ones, never a silent default, and every entry resolves to its
implementation."""

from types import SimpleNamespace

import pytest
import torch

from hf_transfer._registry import LazyReference, Registry
from hf_transfer.adaptation import ADAPTATION_METHODS, DomainAdaptationArguments, create_alignment_loss
from hf_transfer.contrastive import ContrastiveArguments
from hf_transfer.contrastive.losses import CONTRASTIVE_LOSSES, create_contrastive_loss
from hf_transfer.errors import ConfigError
from hf_transfer.finetuning import STRATEGIES, TransferArguments
from hf_transfer.models.pooling import pool_tokens
from hf_transfer.models.pooling_modes import CLASSIFIER_POOLINGS, POOLING_MODES


def test_registry_refuses_unknown_names_and_duplicates():
    registry = Registry("colour", "--colour")
    registry.register(SimpleNamespace(name="red"))
    registry.register(SimpleNamespace(name="blue"))
    assert registry.names() == ("red", "blue") and list(registry) == ["red", "blue"] and "red" in registry
    with pytest.raises(ConfigError, match=r"^--colour 'green' is not one of red, blue\.$"):
        registry.get("green")
    with pytest.raises(ValueError, match="registered already"):
        registry.register(SimpleNamespace(name="red"))


def _loss_args(name):
    return SimpleNamespace(
        contrastive_loss=name,
        temperature=0.1,
        learnable_temperature=False,
        min_temperature=0.01,
        gather_across_processes=False,
        symmetric=True,
    )


def test_an_unknown_contrastive_loss_is_refused_not_replaced_by_ntxent():
    """The factory used to end in a fall-through that returned NT-Xent for any name it did not know."""
    with pytest.raises(ConfigError, match="--contrastive_loss 'triplet' is not one of ntxent, in_batch, supcon"):
        create_contrastive_loss(_loss_args("triplet"))
    with pytest.raises(ConfigError, match="is not one of"):
        ContrastiveArguments(contrastive_loss="triplet")


@pytest.mark.parametrize("name", CONTRASTIVE_LOSSES.names())
def test_every_contrastive_loss_entry_builds_its_module(name):
    loss = create_contrastive_loss(_loss_args(name))
    assert type(loss).__name__ == CONTRASTIVE_LOSSES.get(name).loss_class.target.rpartition(":")[2]
    anchors, positives = torch.randn(4, 8), torch.randn(4, 8)
    labels = torch.tensor([0, 0, 1, 1])
    assert torch.isfinite(loss(anchors, positives, labels=labels))


@pytest.mark.parametrize("name", ADAPTATION_METHODS.names())
def test_every_adaptation_method_entry_builds_its_loss(name):
    entry = ADAPTATION_METHODS.get(name)
    arguments = DomainAdaptationArguments(method=name)
    loss = create_alignment_loss(name, 6, 3, **arguments.alignment_loss_options())
    assert (loss is None) == (not entry.aligns) == (not arguments.uses_alignment)
    if loss is not None:  # it takes the outputs it names, for both domains
        outputs = {"features": torch.randn(8, 6), "logits": torch.randn(8, 3)}
        domains = torch.tensor([0] * 4 + [1] * 4)
        inputs = getattr(loss, "inputs", ("features",))
        assert torch.isfinite(loss(*(outputs[name] for name in inputs), domains))
    with pytest.raises(ConfigError, match="--method 'adda' is not one of source_only, dann"):
        DomainAdaptationArguments(method="adda")


def test_every_token_pooling_mode_pools_and_the_classifier_poolings_are_the_exportable_ones():
    hidden, mask = torch.randn(2, 5, 4), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    for entry in POOLING_MODES.entries():
        if entry.pool is not None:
            assert pool_tokens(hidden, mask, entry.name).shape == (2, 4)
    assert CLASSIFIER_POOLINGS[0] == "head" and "pooler" not in CLASSIFIER_POOLINGS
    with pytest.raises(ConfigError, match="--pooling 'median' is not one of mean, cls"):
        pool_tokens(hidden, mask, "median")


def test_strategies_say_their_stages():
    stages = {
        name: (
            STRATEGIES.get(name).trains_on_pairs,
            STRATEGIES.get(name).probes,
            TransferArguments(strategy=name).finetune_method,
        )
        for name in STRATEGIES
    }
    assert stages == {
        "linear_probe": (False, True, None),
        "full": (False, False, "full"),
        "lora": (False, False, "lora"),
        "lp_ft": (False, True, "full"),
        "contrastive_probe": (True, True, None),
    }
    assert [name for name in STRATEGIES if STRATEGIES.get(name).finetunes] == ["full", "lora", "lp_ft"]
    assert TransferArguments(strategy="lp_ft", lp_ft_finetune="lora").finetune_method == "lora"
    with pytest.raises(
        ConfigError, match="--strategy 'setfit_like' is not one of linear_probe, full, lora, lp_ft, contrastive_probe"
    ):
        TransferArguments(strategy="setfit_like")


def test_lazy_reference_imports_on_use():
    assert LazyReference("math:sqrt")(16.0) == 4.0


def test_tasks_name_stock_transformers_classes_and_refuse_unknown_names():
    import transformers

    from hf_transfer.tasks import TASK_CHOICES, TASKS

    for task in TASKS.entries():
        for modality in task.model_classes:
            assert hasattr(transformers, task.model_class(modality)), task.name
            assert task.pipeline_tag(modality) in transformers.pipelines.SUPPORTED_TASKS
        assert task.headline_metric in task.metrics
    assert TASK_CHOICES[0] == "auto"
    with pytest.raises(ConfigError, match="--task 'ranking' is not one of"):
        TransferArguments(task="ranking")
    with pytest.raises(ConfigError, match="--task token_classification is for text models; this is a vision model"):
        TASKS.get("token_classification").model_class("vision")


def test_batch_mean_losses_of_the_tasks():
    from hf_transfer.tasks.losses import multi_label_loss, regression_loss, soft_target_loss

    logits = torch.tensor([[0.0, 2.0], [1.0, -1.0]])
    assert regression_loss(logits[:, :1], torch.tensor([[1.0], [3.0]])).item() == pytest.approx((1 + 4) / 2)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    assert multi_label_loss(logits, torch.tensor([[0.0, 1.0], [1.0, 0.0]])).item() == pytest.approx(bce.item())
    hard = torch.nn.functional.cross_entropy(logits, torch.tensor([1, 0]))
    assert soft_target_loss(logits, torch.tensor([[0.0, 1.0], [1.0, 0.0]])).item() == pytest.approx(hard.item())


def test_every_modality_entry_resolves_its_references():
    import dataclasses
    import typing

    import transformers
    from datasets import Dataset

    from hf_transfer.constants import Modality
    from hf_transfer.contrastive.arguments import ViewsName
    from hf_transfer.data import infer_modality
    from hf_transfer.modalities import MODALITIES
    from hf_transfer.tasks import TASKS

    assert MODALITIES.names() == typing.get_args(Modality)
    for entry in MODALITIES.entries():
        for field in dataclasses.fields(entry):
            reference = getattr(entry, field.name)
            if isinstance(reference, LazyReference):
                assert callable(reference.resolve()), (entry.name, field.name)
        assert entry.processor_class.resolve() is getattr(transformers, entry.processor_class_name)
        assert POOLING_MODES.get(entry.default_pooling).name == entry.default_pooling
        assert set(entry.contrastive_views) <= set(typing.get_args(ViewsName))
        assert (entry.words_column is None) == (entry.preprocess_words is None)
        assert infer_modality(Dataset.from_dict({entry.input_column: ["x"], "label": [0]})) == entry.name
    for task in TASKS.entries():
        assert set(task.model_classes) <= set(MODALITIES), task.name


def test_an_unknown_modality_is_one_error_listing_the_known_ones():
    """`create_collator` used to stack `pixel_values` for any modality that was not exactly `text`."""
    from datasets import Dataset

    from hf_transfer.modalities import MODALITIES
    from hf_transfer.processing import create_collator, describe_preprocessing, preprocess_dataset

    known = r"^modality 'audio' is not one of text, vision\.$"
    with pytest.raises(ConfigError, match=known):
        MODALITIES.get("audio")
    with pytest.raises(ConfigError, match=known):
        create_collator(None, "audio")
    with pytest.raises(ConfigError, match=known):
        describe_preprocessing(None, "audio", 128)
    with pytest.raises(ConfigError, match=known):
        preprocess_dataset(Dataset.from_dict({"image": ["x.png"], "label": [0]}), None, "audio")
