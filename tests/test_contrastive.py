"""hf_transfer.contrastive: losses vs. straightforward references, temperature, configs, views, GradCache,
the cross-process gather (2 gloo processes), the trainer and the saved backbone."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from transformers import AutoModel, AutoModelForImageClassification, AutoTokenizer, TrainingArguments

from gloo_workers import run_gloo_workers
from hf_transfer.contrastive import (
    BatchedSimCLRAugmentation,
    ContrastiveArguments,
    ContrastiveImageCollator,
    ContrastiveModel,
    ContrastiveTextCollator,
    ContrastiveTrainer,
    InBatchNegativesLoss,
    NTXentLoss,
    SimCLRAugmentation,
    SupConLoss,
    Temperature,
    cached_contrastive_loss,
    create_backbone_from_config,
    create_contrastive_collator,
    create_contrastive_loss,
    load_contrastive_dataset,
)
from hf_transfer.contrastive.gradcache import split_features
from hf_transfer.data import DataArguments
from hf_transfer.errors import ConfigError, DataError
from hf_transfer.models import Backbone, create_backbone

TINY_VIT = "image_size=16,patch_size=8,hidden_size=16,num_hidden_layers=1,num_attention_heads=2,intermediate_size=24"


# --------------------------------------------------------------------------------------------------
# References, written as loops straight from the papers' formulas


def _cos(u, v):
    return float(F.cosine_similarity(u, v, dim=0))


def reference_ntxent(a, b, tau):
    z, n = torch.cat([a, b]), a.shape[0]
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        den = sum(math.exp(_cos(z[i], z[k]) / tau) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(_cos(z[i], z[j]) / tau) / den)
    return total / (2 * n)


def reference_in_batch(a, p, tau, symmetric=False):
    n = a.shape[0]

    def one_way(x, y):
        return (
            sum(
                -math.log(math.exp(_cos(x[i], y[i]) / tau) / sum(math.exp(_cos(x[i], y[j]) / tau) for j in range(n)))
                for i in range(n)
            )
            / n
        )

    return (one_way(a, p) + one_way(p, a)) / 2 if symmetric else one_way(a, p)


def reference_supcon(views, labels, tau):
    z = torch.cat(views)
    y = labels.repeat(len(views))
    losses = []
    for i in range(len(z)):
        positives = [p for p in range(len(z)) if p != i and y[p] == y[i]]
        if not positives:
            continue
        den = sum(math.exp(_cos(z[i], z[a]) / tau) for a in range(len(z)) if a != i)
        losses.append(-sum(math.log(math.exp(_cos(z[i], z[p]) / tau) / den) for p in positives) / len(positives))
    return sum(losses) / len(losses)


@pytest.fixture
def views():
    torch.manual_seed(0)
    return torch.randn(6, 5), torch.randn(6, 5)


# --------------------------------------------------------------------------------------------------
# Losses


@pytest.mark.parametrize("tau", [0.05, 0.5])
def test_ntxent_matches_reference(views, tau):
    a, b = views
    assert NTXentLoss(tau)(a, b).item() == pytest.approx(reference_ntxent(a, b, tau), rel=1e-5)
    # Invariants: the two views play symmetric roles; scaling an embedding changes no cosine.
    assert NTXentLoss(tau)(b, a).item() == pytest.approx(NTXentLoss(tau)(a, b).item(), rel=1e-6)
    assert NTXentLoss(tau)(3 * a, b).item() == pytest.approx(NTXentLoss(tau)(a, b).item(), rel=1e-6)


@pytest.mark.parametrize("symmetric", [False, True])
def test_in_batch_negatives_matches_reference(views, symmetric):
    a, p = views
    loss = InBatchNegativesLoss(temperature=0.05, symmetric=symmetric)
    assert loss(a, p).item() == pytest.approx(reference_in_batch(a, p, 0.05, symmetric), rel=1e-5)
    # Perfect pairs far from each other: the loss goes to 0.
    eye = torch.eye(6)
    assert loss(eye, eye).item() < 1e-6


def test_supcon_matches_reference_and_reduces_to_ntxent(views):
    a, b = views
    labels = torch.tensor([0, 1, 0, 1, 2, 2])
    assert SupConLoss(0.1)(a, b, labels).item() == pytest.approx(reference_supcon([a, b], labels, 0.1), rel=1e-5)
    # All labels distinct: the only positive is the other view, which is NT-Xent.
    assert SupConLoss(0.1)(a, b, torch.arange(6)).item() == pytest.approx(NTXentLoss(0.1)(a, b).item(), rel=1e-6)
    # One view per sample: samples whose class occurs once are left out of the mean.
    single = torch.tensor([0, 0, 1, 1, 2, 3])
    assert SupConLoss(0.1)(a, None, single).item() == pytest.approx(reference_supcon([a], single, 0.1), rel=1e-5)
    with pytest.raises(ValueError, match="SupConLoss needs class labels"):
        SupConLoss()(a, b)


def test_losses_describe_themselves_for_the_model_card():
    loss = InBatchNegativesLoss(temperature=0.05, symmetric=True)
    assert loss.get_config_dict() == {
        "temperature": 0.05,
        "learnable_temperature": False,
        "gather_across_processes": True,
        "symmetric": True,
    }
    for cls in (NTXentLoss, InBatchNegativesLoss, SupConLoss):
        assert "@" in cls().citation and "arxiv.org" in cls().citation
    args = ContrastiveArguments(contrastive_loss="supcon", learnable_temperature=True, temperature=0.2)
    built = create_contrastive_loss(args)
    assert isinstance(built, SupConLoss) and built.get_config_dict()["min_temperature"] == 0.01


def test_learnable_temperature_is_clamped_like_clip(views):
    a, b = views
    loss = NTXentLoss(temperature=0.1, learnable_temperature=True, min_temperature=0.05)
    assert [n for n, _ in loss.named_parameters()] == ["temperature.logit_scale"]
    assert loss.temperature.value == pytest.approx(0.1)
    loss(a, b).backward()
    assert loss.temperature.logit_scale.grad is not None and loss.temperature.logit_scale.grad != 0
    # Pushed far below the floor, the temperature used stays at min_temperature and the gradient stops.
    with torch.no_grad():
        loss.temperature.logit_scale.fill_(math.log(1e4))
    loss.temperature.logit_scale.grad = None
    assert loss.temperature.value == pytest.approx(0.05)
    assert loss(a, b).item() == pytest.approx(NTXentLoss(0.05)(a, b).item(), rel=1e-5)
    loss(a, b).backward()
    assert loss.temperature.logit_scale.grad == 0
    # A fixed temperature has no parameter.
    assert list(NTXentLoss(0.1).parameters()) == []


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Temperature(1e-6), "temperature must be a finite number >= 0.001"),
        (lambda: NTXentLoss(temperature=0.0), "temperature must be a finite number"),
        (lambda: SupConLoss(temperature=float("nan")), "temperature must be a finite number"),
        (
            lambda: Temperature(0.05, learnable=True, min_temperature=0.1),
            r"min_temperature must be in \(0, temperature",
        ),
    ],
)
def test_loss_constructors_reject_bad_temperatures(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"temperature": 1e-5}, "--temperature must be a finite number >= 0.001"),
        ({"learnable_temperature": True, "temperature": 0.05, "min_temperature": 0.1}, "--min_temperature must be in"),
        ({"views": "pair"}, "--views pair needs --pair_column"),
        ({"pair_column": "paraphrase", "views": "dropout"}, "--pair_column 'paraphrase' gives pairs"),
        ({"pair_column": "p", "contrastive_loss": "supcon"}, "supcon makes positives from labels"),
        ({"projection_dim": -1}, "--projection_dim must be >= 0"),
        ({"gradient_cache": True, "gradient_cache_mini_batch_size": 0}, "--gradient_cache_mini_batch_size must be"),
        ({"crop_min_scale": 0.0}, r"--crop_min_scale must be in \(0, 1\]"),
        ({"blur_probability": 1.5}, r"--blur_probability must be a probability in \[0, 1\]"),
        ({"config_overrides": "hidden_size=8"}, "pass --model_type too"),
        ({"model_type": "not-a-model"}, "--model_type 'not-a-model' is not a transformers model type"),
    ],
)
def test_contrastive_arguments_reject_bad_values(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ContrastiveArguments(**kwargs)


def test_contrastive_arguments_resolve_views_and_warn():
    assert ContrastiveArguments().resolve_views("vision") == "augment"
    assert ContrastiveArguments().resolve_views("text") == "dropout"
    assert ContrastiveArguments(pair_column="p", contrastive_loss="in_batch").resolve_views("text") == "pair"
    with pytest.raises(ConfigError, match="--views augment is for images"):
        ContrastiveArguments(views="augment").resolve_views("text")
    with pytest.raises(ConfigError, match="an image backbone needs --views augment"):
        ContrastiveArguments(views="dropout").resolve_views("vision")
    with pytest.warns(UserWarning, match="--symmetric only changes --contrastive_loss in_batch"):
        ContrastiveArguments(symmetric=True)


# --------------------------------------------------------------------------------------------------
# Views


def test_simclr_views_and_image_collator():
    augment = SimCLRAugmentation(16, mean=(0.5,) * 3, std=(0.5,) * 3, blur_probability=0.5)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)) for _ in range(3)]  # grayscale
    batch = ContrastiveImageCollator(augment, return_labels=True)(
        [{"image": im, "label": i} for i, im in enumerate(images)]
    )
    assert batch["pixel_values"].shape == (6, 3, 16, 16) and batch["labels"].tolist() == [0, 1, 2]
    assert not torch.allclose(batch["pixel_values"][:3], batch["pixel_values"][3:])  # two independent draws
    with pytest.raises(DataError, match="needs labels but the batch has no 'label' column"):
        ContrastiveImageCollator(augment, return_labels=True)([{"image": images[0]}])
    batched = ContrastiveImageCollator(BatchedSimCLRAugmentation(16))([{"image": im} for im in images])
    assert batched["pixel_values"].shape == (6, 3, 16, 16)


def test_batched_simclr_augmentation():
    x = torch.rand(6, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    augment = BatchedSimCLRAugmentation(
        16, mean=(0.0,) * 3, std=(1.0,) * 3, color_jitter_strength=1.0, grayscale_probability=0.5, blur_probability=0.5
    )
    torch.manual_seed(0)
    views = augment(torch.cat([x, x]))
    assert views.shape == (12, 3, 16, 16) and views.min() >= 0 and views.max() <= 1
    assert not torch.allclose(views[:6], views[6:])  # every image gets its own draw
    assert not torch.allclose(views[0], views[1])
    torch.manual_seed(0)
    torch.testing.assert_close(augment(torch.cat([x, x])), views)  # seeded by torch's RNG
    # Normalisation uses the processor's statistics.
    normalised = BatchedSimCLRAugmentation(
        20,
        mean=(0.5,) * 3,
        std=(0.25,) * 3,
        color_jitter_strength=0.0,
        grayscale_probability=0.0,
        horizontal_flip=False,
    )(x)
    assert normalised.min() >= -2 - 1e-5 and normalised.max() <= 2 + 1e-5 and normalised.min() < -1
    # Hue rotation and saturation leave grey pixels grey.
    gray = torch.rand(4, 1, 8, 8).expand(4, 3, 8, 8)
    jittered = BatchedSimCLRAugmentation(
        8, mean=(0.0,) * 3, std=(1.0,) * 3, horizontal_flip=False, grayscale_probability=0.0, color_jitter_strength=1.0
    )(gray)
    torch.testing.assert_close(jittered[:, 0], jittered[:, 1], atol=1e-4, rtol=0)


def test_text_collators_dropout_and_pairs(tiny_bert):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    rows = [{"text": "short", "positive": "a much longer positive text"}, {"text": "another text", "positive": "x"}]
    dropout = ContrastiveTextCollator(tokenizer, views="dropout")(rows)
    assert dropout["input_ids"].shape[0] == 4 and torch.equal(dropout["input_ids"][:2], dropout["input_ids"][2:])
    pair = ContrastiveTextCollator(tokenizer, views="pair")(rows)
    expected = tokenizer(
        ["short", "another text", "a much longer positive text", "x"], padding=True, return_tensors="pt"
    )
    assert torch.equal(pair["input_ids"], expected["input_ids"])
    with pytest.raises(DataError, match="needs the column 'positive'"):
        ContrastiveTextCollator(tokenizer, views="pair")([{"text": "t"}])


# --------------------------------------------------------------------------------------------------
# Model, GradCache, trainer


def _text_model(path, dropout=0.0, projection_dim=8, loss=None):
    model = AutoModel.from_pretrained(path, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    backbone = Backbone(model, AutoTokenizer.from_pretrained(path), "text", "mean")
    return ContrastiveModel(backbone, projection_dim=projection_dim, loss=loss)


def _batch(tiny_bert, n=4):
    texts = [
        "the drug worked well",
        "terrible side effects",
        "no change at all after weeks",
        "ok",
        "headache and nausea",
        "felt better in days",
    ][:n]
    return ContrastiveTextCollator(AutoTokenizer.from_pretrained(tiny_bert), views="dropout")(
        [{"text": t} for t in texts]
    )


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_gradient_cache_gives_the_same_gradients(tiny_bert):
    batch = _batch(tiny_bert, n=5)  # 10 rows, mini-batches of 3 (uneven last one)
    loss_fn = InBatchNegativesLoss(0.05, symmetric=True, learnable_temperature=True)
    model = _text_model(tiny_bert, dropout=0.0, loss=loss_fn).train()

    def loss_of(embeddings):
        return model.loss(*embeddings.chunk(2))

    plain = loss_of(model(**batch))
    plain.backward()
    expected = _grads(model)
    model.zero_grad()
    cached = cached_contrastive_loss(
        model, batch, loss_of, mini_batch_size=3, loss_parameters=list(loss_fn.parameters())
    )
    (cached / 2).backward()  # the backward scale (gradient accumulation) must reach every replayed mini-batch
    got = _grads(model)
    assert cached.item() == pytest.approx(plain.item(), rel=1e-6)
    assert set(got) == set(expected) and "loss.temperature.logit_scale" in got
    for name in expected:
        torch.testing.assert_close(got[name], expected[name] / 2, atol=1e-5, rtol=0, msg=name)


def test_gradient_cache_replays_dropout_masks(tiny_bert):
    """With dropout, the replayed mini-batches must draw the masks of the first pass (saved RNG states)."""
    batch = _batch(tiny_bert, n=4)
    model = _text_model(tiny_bert, dropout=0.3, loss=NTXentLoss(0.1)).train()
    chunks = split_features(batch, 3)  # the mini-batches GradCache embeds (padding trimmed per mini-batch)
    torch.manual_seed(1)
    reference = model.loss(*torch.cat([model(**c) for c in chunks]).chunk(2))  # same mini-batches, one graph
    reference.backward()
    expected = _grads(model)
    model.zero_grad()
    torch.manual_seed(1)
    cached = cached_contrastive_loss(model, batch, lambda e: model.loss(*e.chunk(2)), mini_batch_size=3)
    cached.backward()
    assert cached.item() == pytest.approx(reference.item(), rel=1e-6)
    for name, grad in _grads(model).items():
        torch.testing.assert_close(grad, expected[name], atol=1e-5, rtol=0, msg=name)


def test_trainer_gradient_cache_matches_plain_training_step(tiny_bert, tmp_path):
    grads = []
    for mini_batch in (None, 2):
        torch.manual_seed(0)  # the same projection head
        model = _text_model(tiny_bert, dropout=0.0)
        args = TrainingArguments(str(tmp_path / str(mini_batch)), report_to="none", use_cpu=True)
        trainer = ContrastiveTrainer(
            model, args, loss=NTXentLoss(0.1, learnable_temperature=True), gradient_cache_mini_batch_size=mini_batch
        )
        trainer.current_gradient_accumulation_steps = 2  # set by the training loop; the backward scale
        trainer.training_step(trainer.model, dict(_batch(tiny_bert, n=4)))
        grads.append(_grads(model))
    assert set(grads[0]) == set(grads[1])
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-5, rtol=0, msg=name)
    # The learnable temperature is trained but never weight-decayed; the pooler (unused by mean pooling) is frozen.
    decayed = trainer.get_decay_parameter_names(trainer.model)
    assert "loss.temperature.logit_scale" not in decayed and any("projection" in n for n in decayed)
    assert not any(p.requires_grad for p in model.backbone.model.pooler.parameters())


def test_trainer_rejects_bad_setups(tiny_bert, tmp_path):
    args = TrainingArguments(str(tmp_path), report_to="none", use_cpu=True)
    with pytest.raises(ConfigError, match="needs a loss"):
        ContrastiveTrainer(_text_model(tiny_bert), args)
    with pytest.raises(ConfigError, match="trains a ContrastiveModel"):
        ContrastiveTrainer(nn.Linear(2, 2), args, loss=NTXentLoss())
    with pytest.raises(ConfigError, match="gradient_cache_mini_batch_size must be positive"):
        ContrastiveTrainer(_text_model(tiny_bert), args, loss=NTXentLoss(), gradient_cache_mini_batch_size=0)


@pytest.mark.parametrize("pooling", ["mean", "pooler"])
def test_saved_text_backbone_loads_with_automodel_and_sentence_transformers(tiny_bert, tmp_path, pooling):
    backbone = create_backbone(tiny_bert, pooling=pooling)
    model = ContrastiveModel(backbone, projection_dim=8, loss=NTXentLoss()).eval()
    model.save_backbone(tmp_path, max_seq_length=64)
    texts = ["a first sentence", "and a second, longer one"]
    inputs = backbone.processor(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model.embed(**inputs)
        reloaded = create_backbone(str(tmp_path), pooling=pooling).eval().embed(**inputs)
    torch.testing.assert_close(reloaded, expected)
    assert "projection" not in json.dumps(list(AutoModel.from_pretrained(tmp_path).state_dict()))
    modules = json.loads((tmp_path / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == (
        ["Transformer", "Pooling", "Normalize"]
        if pooling == "mean"
        else ["Transformer", "Pooling", "Dense", "Normalize"]
    )
    sentence_transformers = pytest.importorskip("sentence_transformers")
    st_model = sentence_transformers.SentenceTransformer(str(tmp_path), device="cpu")
    assert st_model.max_seq_length == 64
    encoded = st_model.encode(texts, convert_to_tensor=True)
    torch.testing.assert_close(encoded, F.normalize(expected, dim=-1), atol=1e-5, rtol=1e-4)


def test_vision_from_scratch_trains_and_saves_a_classifier_backbone(tmp_path):
    """SimCLR on a random ViT for two steps through the trainer; the saved backbone is a plain ViT checkpoint."""
    from datasets import Dataset

    backbone = create_backbone_from_config("vit", TINY_VIT)
    assert backbone.model.pooler is None and backbone.modality == "vision"
    args = ContrastiveArguments(projection_dim=8)
    collator = create_contrastive_collator(backbone.processor, "vision", args)
    rng = np.random.default_rng(0)
    data = Dataset.from_dict(
        {"image": [Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)) for _ in range(8)]}
    )
    model = ContrastiveModel(backbone, projection_dim=8)
    training_args = TrainingArguments(
        str(tmp_path / "run"),
        per_device_train_batch_size=4,
        max_steps=2,
        save_steps=2,
        report_to="none",
        use_cpu=True,
        learning_rate=1e-3,
    )
    trainer = ContrastiveTrainer(
        model, training_args, loss=create_contrastive_loss(args), train_dataset=data, data_collator=collator
    )
    before = backbone.model.embeddings.cls_token.detach().clone()
    result = trainer.train()
    assert math.isfinite(result.training_loss) and not torch.equal(before, backbone.model.embeddings.cls_token)
    # Checkpoints keep the whole model (head included) for resume; the final save is the backbone alone.
    from safetensors.torch import load_file

    assert any(k.startswith("projection.") for k in load_file(tmp_path / "run" / "checkpoint-2" / "model.safetensors"))
    trainer.save_model(str(tmp_path / "final"))
    assert not (tmp_path / "final" / "modules.json").exists()
    classifier = AutoModelForImageClassification.from_pretrained(tmp_path / "final", num_labels=3)
    pixels = collator([{"image": image} for image in data["image"][:2]])["pixel_values"]
    with torch.no_grad():
        torch.testing.assert_close(
            classifier.vit(pixel_values=pixels).last_hidden_state[:, 0], backbone.eval().embed(pixel_values=pixels)
        )


def test_unlabelled_and_paired_text_files(tmp_path):
    corpus = tmp_path / "corpus.csv"
    corpus.write_text("sentence,paraphrase\nthe cat sat,a cat was sitting\nit rains,rain is falling\nhi,hello\n")
    data = load_contrastive_dataset(
        DataArguments(train_file=str(corpus), text_column="sentence"), ContrastiveArguments()
    )
    assert data["train"].column_names == ["text"] and len(data["train"]) == 3
    pairs = load_contrastive_dataset(
        DataArguments(train_file=str(corpus), text_column="sentence", max_train_samples=2),
        ContrastiveArguments(pair_column="paraphrase", contrastive_loss="in_batch"),
    )
    assert pairs["train"].column_names == ["text", "positive"] and len(pairs["train"]) == 2
    with pytest.raises(ConfigError, match="supcon needs labels, but .* has no label column"):
        load_contrastive_dataset(DataArguments(train_file=str(corpus)), ContrastiveArguments(contrastive_loss="supcon"))
    with pytest.raises(ConfigError, match="--pair_column 'p' needs --train_file"):
        load_contrastive_dataset(DataArguments(dataset_name="digits"), ContrastiveArguments(pair_column="p"))
    with pytest.raises(DataError, match="--pair_column 'nope' is not in"):
        load_contrastive_dataset(DataArguments(train_file=str(corpus)), ContrastiveArguments(pair_column="nope"))


# --------------------------------------------------------------------------------------------------
# Negatives from all processes: 2 gloo processes x batch B


# Each worker imports only torch and hf_transfer.contrastive.{losses,gradcache} (no transformers), so two
# processes start in a couple of seconds.
_GATHER_WORKER = r"""
import gc, os, sys
import torch, torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
import torch.nn.functional as F
import hf_transfer.contrastive.losses as losses
from hf_transfer.contrastive.gradcache import cached_contrastive_loss

rank, world_size, init_file, out_dir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
data = torch.load(os.path.join(out_dir, "data.pt"))
embeddings, labels = data["embeddings"], data["labels"]
b = embeddings.shape[1] // world_size
local = slice(rank * b, (rank + 1) * b)
results, shapes = {}, []
original = F.cross_entropy
def spy(logits, target, *args, **kwargs):
    shapes.append(tuple(logits.shape))
    return original(logits, target, *args, **kwargs)
F.cross_entropy = spy
for name, loss in (("ntxent", losses.NTXentLoss(0.1)), ("in_batch", losses.InBatchNegativesLoss(0.05, symmetric=True)),
                   ("supcon", losses.SupConLoss(0.1))):
    a = embeddings[0, local].clone().requires_grad_()
    p = embeddings[1, local].clone().requires_grad_()
    value = loss(a, p, labels[local])
    value.backward()
    results[name] = (value.item(), a.grad, p.grad)
F.cross_entropy = original
results["in_batch_logits"] = shapes[1]

# GradCache under DDP: the same parameter gradients as the plain loss, both gathering across processes.
torch.manual_seed(0)
net = DistributedDataParallel(nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 4)))
inputs = {"input": embeddings.reshape(-1, 5)[rank * 2 * b:(rank + 1) * 2 * b]}
loss = losses.NTXentLoss(0.1)
loss(*net(**inputs).chunk(2)).backward()
plain = [p.grad.clone() for p in net.parameters()]
net.zero_grad()
cached_contrastive_loss(net, inputs, lambda e: loss(*e.chunk(2)), mini_batch_size=3).backward()
results["ddp_cached"] = [(p.grad - g).abs().max().item() for p, g in zip(net.parameters(), plain)]
torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
# Teardown: DDP's reducer keeps the gloo group alive past destroy_process_group, and a gloo group freed during
# interpreter finalisation can abort the process ("terminate called without an active exception", seen once in
# CI). So release the model first, let both ranks finish before either closes its sockets, then leave without
# finalisation: the results are already on disk.
del net
gc.collect()
dist.barrier()
dist.destroy_process_group()
sys.stdout.flush()
os._exit(0)
"""


def test_negatives_are_gathered_from_all_processes_with_gradients(tmp_path):
    """2 processes x B rows give the loss and the gradients of one process holding all 2B rows."""
    world_size, b = 2, 3
    torch.manual_seed(0)
    embeddings = torch.randn(2, world_size * b, 5)  # (views, 2B, D)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    torch.save({"embeddings": embeddings, "labels": labels}, tmp_path / "data.pt")
    ranks = run_gloo_workers(_GATHER_WORKER, world_size, tmp_path, timeout=120)
    for name, loss in (
        ("ntxent", NTXentLoss(0.1)),
        ("in_batch", InBatchNegativesLoss(0.05, symmetric=True)),
        ("supcon", SupConLoss(0.1)),
    ):
        a, p = embeddings[0].clone().requires_grad_(), embeddings[1].clone().requires_grad_()
        full = loss(a, p, labels)
        full.backward()
        # DDP averages over processes: mean of the per-process losses and gradients == one big batch.
        assert np.mean([r[name][0] for r in ranks]) == pytest.approx(full.item(), rel=1e-5), name
        got_a = torch.cat([r[name][1] for r in ranks]) / world_size
        got_p = torch.cat([r[name][2] for r in ranks]) / world_size
        torch.testing.assert_close(got_a, a.grad, atol=1e-6, rtol=1e-5, msg=name)
        torch.testing.assert_close(got_p, p.grad, atol=1e-6, rtol=1e-5, msg=name)
    # Each process scores its B anchors against all 2B positives: 2B - 1 negatives per anchor.
    assert ranks[0]["in_batch_logits"] == (b, world_size * b)
    assert max(max(r["ddp_cached"]) for r in ranks) < 1e-5


def test_linear_evaluation_probes_the_pooled_embedding(tiny_bert):
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    from hf_transfer.contrastive import linear_evaluation

    features = Features({"text": Value("string"), "label": ClassLabel(names=["alpha", "omega"])})

    def split(n, offset):  # the class word decides the label; the numbers are noise
        rows = [(f"{'alpha' if i % 2 == 0 else 'omega'} {offset + i} {offset * i}", i % 2) for i in range(n)]
        return Dataset.from_dict({"text": [t for t, _ in rows], "label": [y for _, y in rows]}, features=features)

    data = DatasetDict({"train": split(40, 0), "validation": split(20, 100), "test": split(20, 200)})
    scores = linear_evaluation(create_backbone(tiny_bert, "mean"), data, max_seq_length=16)
    assert scores["train_accuracy"] == 1.0 and scores["test_accuracy"] >= 0.9 and scores["test_f1"] >= 0.9
    assert {"validation_accuracy", "validation_f1", "l2"} <= set(scores)
