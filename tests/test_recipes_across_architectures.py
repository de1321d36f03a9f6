"""The other recipes on architectures whose heads have new hidden layers or batch norms (RoBERTa, DistilBERT,
ResNet): what they save reloads in plain transformers / peft / sentence-transformers to what the run reported.

The matrix of `test_architecture_matrix.py` covers every family with recipes/finetune.py; here a representative
subset goes through domain_adapt (target accuracy), maml (meta-test episodes) and contrastive_pretrain
(`AutoModel` and `SentenceTransformer` embeddings).
"""

import json

import numpy as np
import pytest
import torch
from datasets import concatenate_datasets
from peft import PeftModel
from transformers import (
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

from hf_transfer.adaptation import load_domain_dataset
from hf_transfer.data import DataArguments, load_transfer_dataset
from recipe_runner import assert_ok, run_recipe_in_process

TRAIN = [
    "--num_train_epochs",
    "1",
    "--per_device_train_batch_size",
    "8",
    "--per_device_eval_batch_size",
    "16",
    "--save_strategy",
    "no",
    "--learning_rate",
    "5e-3",
    "--lora_r",
    "4",
]


def _predict(model, processor, rows, modality: str) -> np.ndarray:
    with torch.no_grad():
        if modality == "text":
            inputs = processor(list(rows["text"]), truncation=True, max_length=48, padding=True, return_tensors="pt")
        else:
            inputs = processor([image.convert("RGB") for image in rows["image"]], return_tensors="pt")
        return model.eval()(**inputs).logits.argmax(-1).numpy()


@pytest.mark.parametrize(
    "architecture, domains",
    [
        ("roberta", ("tweet_sentiment", "drug_reviews")),  # two-layer head: classifier.dense + out_proj
        ("resnet", ("digits", "digits_m")),  # batch norms: their statistics move while LoRA trains
    ],
)
def test_domain_adapt_lora_reloads_to_the_target_accuracy(architecture, domains, tiny, tmp_path, one_torch_thread):
    base = tiny(architecture)
    source, target = domains
    out = tmp_path / "out"
    run = assert_ok(
        run_recipe_in_process(
            "domain_adapt.py",
            "--model_name_or_path",
            base,
            "--method",
            "dann",
            "--strategy",
            "lora",
            "--merge_lora",
            "true",
            "--source_dataset_name",
            source,
            "--source_max_train_samples",
            "40",
            "--source_max_eval_samples",
            "24",
            "--target_dataset_name",
            target,
            "--target_max_train_samples",
            "40",
            "--target_max_eval_samples",
            "24",
            "--max_seq_length",
            "48",
            "--compute_a_distance",
            "false",
            *TRAIN,
            output_dir=out,
        )
    )
    reported = run.results["target_eval_accuracy"]
    rows = load_domain_dataset(DataArguments(dataset_name=target, max_train_samples=40, max_eval_samples=24))[
        "validation"
    ]
    labels = np.array(rows["label"])
    names = rows.features["label"].names
    text = architecture == "roberta"
    auto_cls = AutoModelForSequenceClassification if text else AutoModelForImageClassification
    processor = (AutoTokenizer if text else AutoImageProcessor).from_pretrained(out)
    modality = "text" if text else "vision"
    base_model = auto_cls.from_pretrained(base, num_labels=len(names), id2label=dict(enumerate(names)))
    peft_model = PeftModel.from_pretrained(base_model, out)
    assert (_predict(peft_model, processor, rows, modality) == labels).mean() == pytest.approx(reported)
    merged = auto_cls.from_pretrained(out / "merged")
    assert (_predict(merged, processor, rows, modality) == labels).mean() == pytest.approx(reported)


MAML_TEXT = [
    "--dataset_name",
    "bbc_news",
    "--n_way",
    "2",
    "--k_shot",
    "2",
    "--q_queries",
    "2",
    "--meta_train_classes",
    "business",
    "politics",
    "sports",
    "--meta_test_classes",
    "entertainment",
    "tech",
    "--max_seq_length",
    "16",
    "--inner_steps",
    "1",
    "--inner_lr",
    "0.5",
    "--meta_batch_size",
    "2",
    "--num_validation_episodes",
    "2",
    "--num_test_episodes",
    "6",
    "--learning_rate",
    "1e-3",
    "--max_steps",
    "2",
    "--save_steps",
    "2",
    "--run_baselines",
    "false",
]


def _meta_test_episodes(tokenizer):
    """The recipe's meta-test episodes for MAML_TEXT, rebuilt with the library (same seeds, same rows)."""
    from hf_transfer.meta import EpisodeDataset, EpisodeSampler, split_classes, split_meta_rows
    from hf_transfer.processing import create_collator, preprocess_dataset

    raw = load_transfer_dataset(DataArguments(dataset_name="bbc_news"))
    pool = concatenate_datasets([raw[split] for split in raw])
    splits = split_classes(
        pool.features["label"].names,
        2,
        train=["business", "politics", "sports"],
        test=["entertainment", "tech"],
        seed=0,
    )
    rows = split_meta_rows(pool, splits, 0.2, None, seed=0)
    sampler = EpisodeSampler(pool, 2, 2, 2, rows=rows["test"], seed=0 + 2, split_name="test")
    return EpisodeDataset(
        sampler, preprocess_dataset(pool, tokenizer, "text", 16), create_collator(tokenizer, "text"), 6
    )


def _assert_reproduces(maml, episodes, reported: dict) -> None:
    """Same query accuracy and loss on every meta-test episode (the loss tells weights apart where the few
    queries of an episode tie the accuracy)."""
    from hf_transfer.meta import episode_results

    results = episode_results(maml, episodes, range(6))
    assert [r.accuracy for r in results] == pytest.approx(reported["maml"])
    assert [r.query_loss for r in results] == pytest.approx(reported["maml_query_loss"], rel=1e-4, abs=1e-6)


def test_maml_lora_on_roberta_reproduces_its_meta_test_episodes(tiny, tmp_path, one_torch_thread):
    """The saved adapter (with the new two-layer head) plus maml_config.json adapts to the same query accuracies."""
    from hf_transfer.meta import MAML

    base = tiny("roberta")
    out = tmp_path / "out"
    assert_ok(
        run_recipe_in_process(
            "maml.py",
            "--model_name_or_path",
            base,
            *MAML_TEXT,
            "--adapt",
            "lora_and_head",
            "--lora_r",
            "2",
            output_dir=out,
        )
    )
    reported = json.loads((out / "meta_test_episodes.json").read_text())
    episodes = _meta_test_episodes(AutoTokenizer.from_pretrained(out))
    model = PeftModel.from_pretrained(
        AutoModelForSequenceClassification.from_pretrained(base, num_labels=2, id2label={0: "way_0", 1: "way_1"}),
        out,
        is_trainable=True,  # the inner loop adapts the LoRA weights
    )
    _assert_reproduces(MAML.from_pretrained(out, model), episodes, reported)


@pytest.mark.parametrize("adapt", ["all", "lora_and_head"])
def test_maml_on_a_sentence_transformers_checkpoint_meta_learns_its_pooling(adapt, tiny, tmp_path, one_torch_thread):
    """A mean-pooled checkpoint is meta-learned on mean pooling by default; the folder loads in sentence-transformers
    (N-way logits) and, as the README says, back into MAML to the reported meta-test accuracies."""
    from sentence_transformers import SentenceTransformer

    from hf_transfer.meta import MAML
    from hf_transfer.models.pooled_classifier import load_pooled_classifier, load_saved_pooled_classifier

    base = tiny("sentence-bert")
    out = tmp_path / adapt
    run = run_recipe_in_process(
        "maml.py", "--model_name_or_path", base, *MAML_TEXT, "--adapt", adapt, "--lora_r", "2", output_dir=out
    )
    assert_ok(run)
    assert run.results["pooling"] == "mean"
    reported = json.loads((out / "meta_test_episodes.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(out)
    episodes = _meta_test_episodes(tokenizer)

    if adapt == "all":
        model = load_saved_pooled_classifier(out)
    else:  # the meta-learned LoRA initialisation, unmerged
        model = PeftModel.from_pretrained(
            load_pooled_classifier(base, "mean", ["way_0", "way_1"]), out / "adapter", is_trainable=True
        )
    _assert_reproduces(MAML.from_pretrained(out, model), episodes, reported)

    # Without adaptation, sentence-transformers computes the meta-learned model's own logits (for LoRA: the merged
    # folder computes what the unmerged adapter does).
    texts = ["shares fell sharply", "the film won an award"]
    inputs = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model.eval()(**inputs).logits.numpy()
    logits = SentenceTransformer(str(out), device="cpu").encode(texts)
    np.testing.assert_allclose(logits, expected, atol=1e-5)
    assert "SentenceTransformer" in (out / "README.md").read_text()


@pytest.mark.parametrize("architecture", ["distilbert", "roberta"])
def test_contrastive_backbone_loads_with_automodel_and_sentence_transformers(
    architecture, tiny, tmp_path, one_torch_thread
):
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "out"
    assert_ok(
        run_recipe_in_process(
            "contrastive_pretrain.py",
            "--model_name_or_path",
            tiny(architecture),
            "--dataset_name",
            "drug_reviews",
            "--max_train_samples",
            "16",
            "--max_eval_samples",
            "8",
            *TRAIN[:6],
            output_dir=out,
        )
    )
    texts = ["the tablets helped a lot", "terrible side effects, stopped after a week"]
    tokenizer = AutoTokenizer.from_pretrained(out)
    backbone = AutoModel.from_pretrained(out).eval()
    inputs = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = backbone(**inputs).last_hidden_state
    mask = inputs["attention_mask"].unsqueeze(-1).float()
    mean = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    embedded = SentenceTransformer(str(out), device="cpu").encode(texts, convert_to_tensor=True)
    torch.testing.assert_close(embedded, mean, atol=1e-5, rtol=1e-4)


def test_a_distance_does_not_read_a_random_head_layer(tiny):
    """RoBERTa's classifier.dense is new: the A-distance before training must not depend on how it was drawn."""
    from hf_transfer.adaptation import compute_proxy_a_distance
    from hf_transfer.models import load_classification_model
    from hf_transfer.probing import locate_probe_features
    from hf_transfer.processing import create_collator, preprocess_dataset, sample_inputs

    base = tiny("roberta")
    tokenizer = AutoTokenizer.from_pretrained(base)
    collate = create_collator(tokenizer, "text")
    source = preprocess_dataset(
        load_transfer_dataset(DataArguments(dataset_name="tweet_sentiment", max_train_samples=40, max_eval_samples=40))[
            "validation"
        ],
        tokenizer,
        "text",
    )
    target = preprocess_dataset(
        load_domain_dataset(DataArguments(dataset_name="drug_reviews", max_train_samples=40, max_eval_samples=40))[
            "validation"
        ],
        tokenizer,
        "text",
    )
    values = []
    for seed in (0, 1):  # two draws of the random head
        torch.manual_seed(seed)
        model, new = load_classification_model(base, ["negative", "neutral", "positive"])
        layer = locate_probe_features(model, new, sample_inputs(source, collate)).feature_module
        assert layer == "classifier.dense"
        values.append(compute_proxy_a_distance(model, source, target, collate, module_name=layer).value)
    assert values[0] == values[1]


def test_domain_adapt_on_the_trained_pooling_reloads_with_sentence_transformers(tiny, tmp_path, one_torch_thread):
    """By default domain adaptation aligns the embedding a sentence-transformers checkpoint was trained for (mean
    pooling here): the adapted classifier (LoRA folded in) is a sentence-transformers model whose logits give the
    reported target accuracy."""
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "out"
    run = assert_ok(
        run_recipe_in_process(
            "domain_adapt.py",
            "--model_name_or_path",
            tiny("sentence-bert"),
            "--method",
            "coral",
            "--strategy",
            "lora",
            "--source_dataset_name",
            "tweet_sentiment",
            "--source_max_train_samples",
            "40",
            "--source_max_eval_samples",
            "24",
            "--target_dataset_name",
            "drug_reviews",
            "--target_max_train_samples",
            "40",
            "--target_max_eval_samples",
            "24",
            "--max_seq_length",
            "48",
            *TRAIN,
            output_dir=out,
        )
    )
    assert run.results["pooling"] == "mean" and run.results["a_distance_before"] >= 0.0
    rows = load_domain_dataset(DataArguments(dataset_name="drug_reviews", max_train_samples=40, max_eval_samples=24))[
        "validation"
    ]
    model = SentenceTransformer(str(out), device="cpu")
    assert model.max_seq_length == 48
    predictions = model.encode(list(rows["text"]), convert_to_tensor=True).argmax(-1).numpy()
    assert (predictions == np.array(rows["label"])).mean() == pytest.approx(run.results["target_eval_accuracy"])
