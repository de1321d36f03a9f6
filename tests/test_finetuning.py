import pytest
import torch
from transformers import TrainingArguments

from hf_transfer.errors import ConfigError
from hf_transfer.finetuning import (
    LoraArguments,
    TransferArguments,
    TransferTrainer,
    create_lora_model,
    create_param_groups,
    layer_id_for_parameter,
    resolve_lora_target_modules,
)
from hf_transfer.models import create_classification_model, resolve_model_path
from tiny_models import make_tiny_bert, make_tiny_vit


@pytest.fixture(scope="module")
def bert_classifier(tmp_path_factory):
    return create_classification_model(make_tiny_bert(tmp_path_factory.mktemp("bert")), ["a", "b", "c"])


@pytest.fixture(scope="module")
def vit_classifier(tmp_path_factory):
    return create_classification_model(make_tiny_vit(tmp_path_factory.mktemp("vit")), ["a", "b"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"strategy": "prompt"}, "--strategy 'prompt' is not one of linear_probe, full, lora, lp_ft"),
        ({"layer_decay": 0.0}, r"--layer_decay 0.0 must be in \(0, 1\]"),
        ({"layer_decay": 1.5}, r"--layer_decay 1.5 must be in \(0, 1\]"),
        ({"lora_r": 0}, "--lora_r .* must be positive"),
        ({"lora_dropout": 1.0}, r"--lora_dropout 1.0 must be in \[0, 1\)"),
        ({"head_learning_rate": -1.0}, "--head_learning_rate -1.0 must be positive"),
        ({"probe_l2_grid": []}, "--probe_l2_grid"),
        ({"strategy": "full", "merge_lora": True}, "--merge_lora only applies to LoRA"),
        ({"strategy": "lora", "push_merged": True}, "--push_merged needs a merged model"),
        ({"lp_ft_finetune": "probe"}, "--lp_ft_finetune 'probe' must be `full` or `lora`"),
    ],
)
def test_transfer_arguments_reject_bad_values(kwargs, message):
    arguments_class = LoraArguments if any(key.startswith("lora_") for key in kwargs) else TransferArguments
    with pytest.raises(ConfigError, match=message):
        arguments_class(**kwargs)


def test_finetune_method_per_strategy():
    assert TransferArguments(strategy="linear_probe").finetune_method is None
    assert TransferArguments(strategy="lp_ft", lp_ft_finetune="lora").finetune_method == "lora"
    assert TransferArguments(strategy="full").finetune_method == "full"


def test_default_lora_targets_are_every_backbone_linear(bert_classifier, vit_classifier):
    # Attention, MLP and pooler Linears alike (a frozen pooler would sit between the adapters and the head).
    assert resolve_lora_target_modules(bert_classifier) == ["query", "key", "value", "dense"]
    targets = resolve_lora_target_modules(vit_classifier)
    assert {"q_proj", "k_proj", "v_proj"} <= set(targets) and not any("classifier" in t for t in targets)
    linears = {n for n, m in vit_classifier.named_modules() if isinstance(m, torch.nn.Linear)}
    adapted = {n for n in linears if any(n == t or n.endswith("." + t) for t in targets)}
    assert adapted == {n for n in linears if not n.startswith("classifier")}


@pytest.mark.integration
def test_default_lora_targets_for_timm_cnn():
    model = create_classification_model(resolve_model_path("efficientnet-lite0"), ["a", "b"], replace_head=True)
    assert resolve_lora_target_modules(model) == ["conv_pw", "conv_pwl", "conv_head"]  # every pointwise conv
    peft_model = create_lora_model(model, LoraArguments())
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert any("conv_pw.lora_A" in n for n in trainable)
    assert any("classifier.modules_to_save" in n for n in trainable)
    assert not any("conv_dw" in n for n in trainable)


def test_unknown_target_module_is_named(bert_classifier):
    with pytest.raises(ConfigError, match=r"--lora_target_modules \['qkv_typo'\] match no module"):
        create_lora_model(bert_classifier, LoraArguments(lora_target_modules=["qkv_typo"]))


def test_lora_trains_adapters_and_head_only(tmp_path):
    model = create_classification_model(make_tiny_bert(tmp_path), ["a", "b"])
    peft_model = create_lora_model(model, LoraArguments(lora_r=4))
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "classifier.modules_to_save" in n for n in trainable)
    assert any("query.lora_A" in n for n in trainable) and any("value.lora_B" in n for n in trainable)


@pytest.mark.parametrize(
    "name, layer",
    [
        ("bert.embeddings.word_embeddings.weight", 0),
        ("bert.encoder.layer.0.attention.self.query.weight", 1),
        ("bert.encoder.layer.5.output.dense.weight", 6),
        ("vit.layers.1.mlp.fc1.weight", 2),
        ("timm_model.blocks.3.0.conv_pw.weight", 4),
        ("timm_model.conv_stem.weight", 0),
        ("bert.pooler.dense.weight", 7),
    ],
)
def test_layer_ids_from_names(name, layer):
    assert layer_id_for_parameter(name, num_layers=6) == layer


def test_param_groups_give_head_its_rate_and_decay_lower_layers(bert_classifier):
    groups = create_param_groups(
        bert_classifier,
        head_prefixes=("classifier",),
        learning_rate=1e-3,
        weight_decay=0.01,
        decay_parameter_names={n for n, _ in bert_classifier.named_parameters() if "bias" not in n},
        head_learning_rate=5e-2,
        layer_decay=0.5,
    )
    by_name = {n: g for g in groups for n in g["names"]}
    assert by_name["classifier.weight"]["lr"] == pytest.approx(5e-2)
    assert by_name["classifier.bias"]["weight_decay"] == 0.0
    # 2 layers: embeddings get decay^3, layer 0 decay^2, layer 1 decay^1, pooler decay^0.
    assert by_name["bert.embeddings.word_embeddings.weight"]["lr"] == pytest.approx(1e-3 * 0.5**3)
    assert by_name["bert.encoder.layer.0.output.dense.weight"]["lr"] == pytest.approx(1e-3 * 0.5**2)
    assert by_name["bert.encoder.layer.1.output.dense.weight"]["lr"] == pytest.approx(1e-3 * 0.5)
    assert by_name["bert.pooler.dense.weight"]["lr"] == pytest.approx(1e-3)
    n_params = sum(len(g["params"]) for g in groups)
    assert n_params == sum(1 for p in bert_classifier.parameters() if p.requires_grad)


def test_trainer_optimizer_uses_the_groups(bert_classifier, tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=2e-4, report_to="none", use_cpu=True)
    trainer = TransferTrainer(model=bert_classifier, args=args, head_learning_rate=1e-2, layer_decay=0.9)
    optimizer = trainer.create_optimizer()
    rates = sorted({g["lr"] for g in optimizer.param_groups})
    assert rates[-1] == pytest.approx(1e-2) and rates[0] == pytest.approx(2e-4 * 0.9**3)
    head = bert_classifier.classifier.weight
    assert any(g["lr"] == pytest.approx(1e-2) and any(p is head for p in g["params"]) for g in optimizer.param_groups)


# ------------------------------------------------------------------------- loss and gradient accumulation


def _one_step(model_dir, task, labels, tmp_path, batch_size, accumulation):
    """One SGD step of TransferTrainer over 4 rows (all of them, whatever the split into micro-batches)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    problem = {"regression": "regression", "multi_label": "multi_label_classification"}[task]
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir,
        num_labels=len(labels[0]),
        problem_type=problem,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    texts = ["a good film", "a bad day", "the rain in spain", "what a match"]
    rows = [
        {**tokenizer(t, padding="max_length", max_length=8), "labels": torch.tensor(y, dtype=torch.float32)}
        for t, y in zip(texts, labels)
    ]
    args = TrainingArguments(
        output_dir=str(tmp_path / f"{task}-{batch_size}"),
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        max_steps=1,
        learning_rate=0.5,
        optim="sgd",
        lr_scheduler_type="constant",
        max_grad_norm=0.0,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        seed=1,
    )
    trainer = TransferTrainer(model=model, args=args, train_dataset=rows, task=task)
    loss = trainer.train().training_loss
    return loss, model.classifier.weight.detach().clone()


@pytest.mark.parametrize(
    "task, labels",
    [
        ("regression", [[1.0], [-2.0], [0.5], [3.0]]),
        ("multi_label", [[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]),
    ],
)
def test_the_loss_does_not_depend_on_gradient_accumulation(tmp_path_factory, tmp_path, task, labels):
    """transformers' regression and multi-label losses are batch means that ignore `num_items_in_batch`, which
    Trainer takes as normalised over the accumulated batch: 2 micro-batches of 2 trained on the sum of their means."""
    model_dir = make_tiny_bert(tmp_path_factory.mktemp("bert-ga"))
    whole_loss, whole_weight = _one_step(model_dir, task, labels, tmp_path, batch_size=4, accumulation=1)
    split_loss, split_weight = _one_step(model_dir, task, labels, tmp_path, batch_size=2, accumulation=2)
    assert split_loss == pytest.approx(whole_loss, rel=1e-4)
    assert torch_allclose(split_weight, whole_weight)


def torch_allclose(a, b) -> bool:
    import torch

    return bool(torch.allclose(a, b, atol=1e-5, rtol=1e-4))
