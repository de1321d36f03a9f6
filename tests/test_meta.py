"""hf_transfer.meta: meta-gradients against explicit unrolling, inner-loop parameter selection, episodes, the outer
loop's checkpoints and trackers, configs."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from datasets import ClassLabel, Dataset, Features, Value
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from hf_transfer.errors import ConfigError, DataError
from hf_transfer.finetuning import LoraArguments, create_lora_model
from hf_transfer.meta import (
    MAML,
    EpisodeArguments,
    EpisodeDataset,
    EpisodeSampler,
    MAMLConfig,
    episode_accuracies,
    mean_confidence_interval,
    probe_accuracies,
    split_classes,
    split_meta_rows,
    zero_init_head,
)

TOL = dict(rtol=1e-5, atol=1e-5)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------------------------------
# Small networks and their hand-written functional twins (the reference never touches MAML's code)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.classifier = nn.Linear(8, 3)

    def forward(self, x):
        return self.classifier(torch.tanh(self.body(x)))


def mlp_reference(p, x, bn_mode=None, buffers=None):
    hidden = torch.tanh(F.linear(x, p["body.weight"], p["body.bias"]))
    return F.linear(hidden, p["classifier.weight"], p["classifier.bias"])


class BNNet(nn.Module):
    """Conv -> BatchNorm -> tanh -> Linear head: the known trap for batched (vmap) meta-gradients."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.bn = nn.BatchNorm2d(3)
        self.classifier = nn.Linear(3 * 4 * 4, 3)

    def forward(self, x):
        return self.classifier(torch.tanh(self.bn(self.conv(x))).flatten(1))


def bn_reference(p, x, bn_mode="batch", buffers=None):
    h = F.conv2d(x, p["conv.weight"], p["conv.bias"])
    if bn_mode == "batch":  # statistics of this batch, running buffers not involved
        h = F.batch_norm(h, None, None, p["bn.weight"], p["bn.bias"], training=True, eps=1e-5)
    else:
        h = F.batch_norm(
            h,
            buffers["bn.running_mean"],
            buffers["bn.running_var"],
            p["bn.weight"],
            p["bn.bias"],
            training=False,
            eps=1e-5,
        )
    return F.linear(torch.tanh(h).flatten(1), p["classifier.weight"], p["classifier.bias"])


def make_tasks(input_shape, num_tasks=3, n_way=3, k=2, q=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    tasks = []
    for _ in range(num_tasks):
        xs = torch.randn(n_way * k, *input_shape, generator=g, dtype=torch.float64)
        xq = torch.randn(n_way * q, *input_shape, generator=g, dtype=torch.float64)
        tasks.append((xs, torch.arange(n_way).repeat_interleave(k), xq, torch.arange(n_way).repeat_interleave(q)))
    return tasks


def reference_meta_gradients(
    model, reference, tasks, *, steps, lr, first_order, adapted=None, lrs=None, bn_mode="batch"
):
    """Explicit unrolling with torch.autograd.grad(create_graph=True): d/d theta0 of the mean query loss."""
    theta = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()}
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    lrs = {n: t.detach().clone().requires_grad_(True) for n, t in (lrs or {}).items()}
    adapted = list(theta) if adapted is None else adapted
    total = 0.0
    for xs, ys, xq, yq in tasks:
        fast = dict(theta)
        for _ in range(steps):
            loss = F.cross_entropy(reference(fast, xs, bn_mode, buffers), ys)
            grads = torch.autograd.grad(loss, [fast[n] for n in adapted], create_graph=not first_order)
            for n, g in zip(adapted, grads):
                fast[n] = fast[n] - (lrs[n] if lrs else lr) * g
        total = total + F.cross_entropy(reference(fast, xq, bn_mode, buffers), yq) / len(tasks)
    leaves = list(theta.values()) + list(lrs.values())
    grads = torch.autograd.grad(total, leaves)
    return dict(zip(list(theta) + [f"lr:{n}" for n in lrs], grads))


def maml_meta_gradients(maml, tasks):
    maml.zero_grad(set_to_none=True)
    maml.train()
    for xs, ys, xq, yq in tasks:
        out = maml({"x": xs}, ys, {"x": xq}, yq)
        (out.loss / len(tasks)).backward()  # task by task, as MAMLTrainer does
    grads = {n: p.grad for n, p in maml.model.named_parameters()}
    grads.update({f"lr:{n}": lr.grad for n, lr in maml.named_inner_lrs().items()})
    return grads


def assert_same_gradients(ours, reference):
    assert set(ours) == set(reference)
    for name, expected in reference.items():
        assert ours[name] is not None, f"no gradient for {name}"
        torch.testing.assert_close(ours[name], expected, **TOL, msg=lambda m, name=name: f"{name}: {m}")
        assert expected.abs().sum() > 0, f"the reference gradient of {name} is zero: the test would prove nothing"


def build(net_cls, seed=0, **config):
    torch.manual_seed(seed)
    model = net_cls().double()
    if isinstance(model, BNNet):  # non-trivial running statistics, for the "running" mode
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    return model, MAML(model, MAMLConfig(**config))


NETS = {"mlp": (MLP, mlp_reference, (4,)), "batchnorm": (BNNet, bn_reference, (1, 6, 6))}


# --------------------------------------------------------------------------------------------------
# Meta-gradients


@pytest.mark.parametrize("net", list(NETS))
@pytest.mark.parametrize("first_order", [False, True], ids=["second_order", "first_order"])
@pytest.mark.parametrize("steps", [1, 3])
def test_meta_gradient_matches_explicit_unrolling(net, first_order, steps):
    net_cls, reference, shape = NETS[net]
    model, maml = build(net_cls, inner_steps=steps, inner_lr=0.3, first_order=first_order)
    tasks = make_tasks(shape)
    expected = reference_meta_gradients(model, reference, tasks, steps=steps, lr=0.3, first_order=first_order)
    assert_same_gradients(maml_meta_gradients(maml, tasks), expected)


def test_first_and_second_order_differ():
    """The second-order terms are real on these networks, so the two tests above check different things."""
    model, _ = build(BNNet)
    tasks = make_tasks((1, 6, 6))
    second = reference_meta_gradients(model, bn_reference, tasks, steps=2, lr=0.3, first_order=False)
    first = reference_meta_gradients(model, bn_reference, tasks, steps=2, lr=0.3, first_order=True)
    assert not torch.allclose(second["conv.weight"], first["conv.weight"], rtol=1e-3, atol=1e-6)


def test_batch_norm_running_mode_matches_reference_and_leaves_buffers_alone():
    model, maml = build(BNNet, inner_steps=2, inner_lr=0.3, batch_norm="running")
    tasks = make_tasks((1, 6, 6))
    expected = reference_meta_gradients(
        model, bn_reference, tasks, steps=2, lr=0.3, first_order=False, bn_mode="running"
    )
    assert_same_gradients(maml_meta_gradients(maml, tasks), expected)


@pytest.mark.parametrize("batch_norm", ["batch", "running"])
def test_episodes_never_update_running_statistics_and_restore_modes(batch_norm):
    model, maml = build(BNNet, inner_steps=2, batch_norm=batch_norm)
    before = {n: b.clone() for n, b in model.named_buffers()}
    model.eval()
    maml_meta_gradients(maml, make_tasks((1, 6, 6)))  # sets maml.train(): modes inside episodes are MAML's own
    with torch.no_grad():
        xs, ys, xq, yq = make_tasks((1, 6, 6), num_tasks=1)[0]
        maml({"x": xs}, ys, {"x": xq}, yq)
    for name, value in model.named_buffers():
        assert torch.equal(value, before[name]), name
    assert model.training and model.bn.track_running_stats  # restored after every episode


def test_meta_sgd_learned_rates_match_reference_and_get_gradients():
    for granularity in ("element", "tensor"):
        model, maml = build(BNNet, inner_steps=2, inner_lr=0.2, learn_inner_lr=True, inner_lr_granularity=granularity)
        with torch.no_grad():  # different rates per weight, so a mix-up would show
            for lr in maml.inner_lrs:
                lr.uniform_(0.05, 0.4)
        tasks = make_tasks((1, 6, 6))
        ours = maml_meta_gradients(maml, tasks)
        expected = reference_meta_gradients(
            model, bn_reference, tasks, steps=2, lr=None, first_order=False, lrs=maml.named_inner_lrs()
        )
        assert_same_gradients(ours, expected)
        for name, lr in maml.named_inner_lrs().items():
            assert lr.shape == (model.get_parameter(name).shape if granularity == "element" else ())
            assert lr.grad is not None and lr.grad.abs().sum() > 0, name
        # the rates are meta-parameters: the outer optimizer sees them
        assert {id(lr) for lr in maml.inner_lrs} <= {id(p) for p in maml.parameters()}


def test_meta_sgd_first_order_rates_still_learn():
    with pytest.warns(UserWarning, match="first-order gradients"):
        _, maml = build(MLP, inner_steps=2, learn_inner_lr=True, first_order=True)
    maml_meta_gradients(maml, make_tasks((4,)))
    assert all(lr.grad is not None and lr.grad.abs().sum() > 0 for lr in maml.inner_lrs)


# --------------------------------------------------------------------------------------------------
# Which parameters adapt: ANIL and LoRA


@pytest.mark.parametrize("net", list(NETS))
def test_anil_adapts_only_the_head_and_matches_reference(net):
    net_cls, reference, shape = NETS[net]
    model, maml = build(net_cls, inner_steps=3, inner_lr=0.3, adapt="head")
    head = ["classifier.weight", "classifier.bias"]
    assert maml.adapted_names == tuple(head)
    tasks = make_tasks(shape)
    xs, ys, _, _ = tasks[0]
    with maml.episode_mode():
        fast = maml.adapt({"x": xs}, ys)
    assert set(fast) == set(head)  # the body's weights are not part of the fast weights ...
    for name in head:
        assert not torch.equal(fast[name], model.get_parameter(name))  # ... the head's moved
    # The fast path (inner loop on head features) and the reference unrolling agree, the body gets a meta-gradient.
    expected = reference_meta_gradients(model, reference, tasks, steps=3, lr=0.3, first_order=False, adapted=head)
    ours = maml_meta_gradients(maml, tasks)
    assert maml.uses_feature_path
    assert_same_gradients(ours, expected)


def test_anil_body_parameters_untouched_by_the_inner_loop():
    model, maml = build(MLP, inner_steps=5, inner_lr=0.5, adapt="head")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    seen = []
    original = maml.functional_forward
    maml.functional_forward = lambda params, inputs: seen.append(set(params)) or original(params, inputs)
    maml._feature_path_ok = False  # the generic path: every inner step is a functional_call
    xs, ys, xq, yq = make_tasks((4,), num_tasks=1)[0]
    out = maml({"x": xs}, ys, {"x": xq}, yq)
    out.loss.backward()
    assert seen and all(names == {"classifier.weight", "classifier.bias"} for names in seen)
    for name, value in model.named_parameters():
        assert torch.equal(value, before[name]), name  # nothing written in place
    assert model.body.weight.grad.abs().sum() > 0  # ... but the outer loop still trains the body


def _tiny_lora_bert():
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=20,
        max_position_embeddings=16,
        num_labels=3,
    )
    model = BertForSequenceClassification(config)
    return create_lora_model(model, LoraArguments(lora_r=2, lora_alpha=4, lora_dropout=0.0))


def test_lora_only_adapts_only_lora_weights():
    model = _tiny_lora_bert()
    maml = MAML(model, MAMLConfig(adapt="lora", inner_steps=2, inner_lr=0.5))
    assert maml.adapted_names and all("lora_" in n for n in maml.adapted_names)
    assert any("modules_to_save" in n for n in maml.meta_parameters())  # the head is meta-trained, not adapted
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    g = torch.Generator().manual_seed(0)
    support = {
        "input_ids": torch.randint(0, 50, (6, 8), generator=g),
        "attention_mask": torch.ones(6, 8, dtype=torch.long),
    }
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    with maml.episode_mode():
        fast = maml.adapt(support, labels)
    assert set(fast) == set(maml.adapted_names)
    moved = [n for n in fast if not torch.equal(fast[n], before[n])]
    assert any("lora_B" in n for n in moved) and any("lora_A" in n for n in moved)
    out = maml(support, labels, support, labels)
    out.loss.backward()
    for name, value in model.named_parameters():
        assert torch.equal(value, before[name]), name
    assert all(p.grad is None for n, p in model.named_parameters() if not p.requires_grad)
    # lora_and_head adds exactly the trainable head copy
    both = MAML(model, MAMLConfig(adapt="lora_and_head"))
    assert set(both.adapted_names) - set(maml.adapted_names) == {
        n for n in maml.meta_parameters() if "classifier.modules_to_save" in n
    }


def test_lora_adapt_without_lora_layers_is_a_config_error():
    with pytest.raises(ConfigError, match="--adapt lora found no trainable LoRA parameter.*create_lora_model"):
        MAML(MLP(), MAMLConfig(adapt="lora"))


def test_head_not_found_is_a_config_error():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    with pytest.raises(ConfigError, match="--head_module"):
        MAML(model, MAMLConfig(adapt="head"))
    assert MAML(model, MAMLConfig(adapt="head", head_module="1")).adapted_names == ("1.weight", "1.bias")


def test_evaluation_mode_keeps_no_graph_and_matches_training_mode():
    model, maml = build(BNNet, inner_steps=3, inner_lr=0.3)
    xs, ys, xq, yq = make_tasks((1, 6, 6), num_tasks=1)[0]
    tracked = maml({"x": xs}, ys, {"x": xq}, yq)
    with torch.no_grad():
        untracked = maml({"x": xs}, ys, {"x": xq}, yq)
    assert not untracked.loss.requires_grad
    torch.testing.assert_close(untracked.logits, tracked.logits.detach())


def test_zero_init_head():
    model = MLP()
    zero_init_head(model)
    assert model.classifier.weight.abs().sum() == 0 and model.classifier.bias.abs().sum() == 0


# --------------------------------------------------------------------------------------------------
# Episodes


def _labelled(counts, names=None):
    labels = [c for c, n in enumerate(counts) for _ in range(n)]
    names = names or [f"c{i}" for i in range(len(counts))]
    features = Features({"x": Value("float32"), "label": ClassLabel(names=names)})
    return Dataset.from_dict({"x": [float(i) for i in range(len(labels))], "label": labels}, features=features)


def test_episode_shapes_labels_and_classes():
    data = _labelled([10] * 6)
    y = np.asarray(data["label"])
    sampler = EpisodeSampler(data, n_way=4, k_shot=2, q_queries=3, seed=5)
    for index in range(20):
        e = sampler.sample(index)
        assert e.support_indices.shape == (8,) and e.query_indices.shape == (12,)
        assert sorted(e.support_labels.tolist()) == sorted([0, 1, 2, 3] * 2)
        assert sorted(e.query_labels.tolist()) == sorted([0, 1, 2, 3] * 3)
        assert len(set(e.classes)) == 4
        # labels are re-indexed: label j is class e.classes[j]
        assert (y[e.support_indices] == np.asarray(e.classes)[e.support_labels]).all()
        assert (y[e.query_indices] == np.asarray(e.classes)[e.query_labels]).all()
        assert not set(e.support_indices) & set(e.query_indices)


def test_episodes_are_reproducible_by_seed_and_index():
    data = _labelled([10] * 6)
    a = EpisodeSampler(data, n_way=3, k_shot=1, q_queries=2, seed=1)
    b = EpisodeSampler(data, n_way=3, k_shot=1, q_queries=2, seed=1)
    for index in (7, 0, 3):  # any order: episode i does not depend on what was drawn before
        assert np.array_equal(a.sample(index).support_indices, b.sample(index).support_indices)
        assert np.array_equal(a.sample(index).query_indices, b.sample(index).query_indices)
    assert not np.array_equal(a.sample(0).query_indices, a.sample(1).query_indices)
    c = EpisodeSampler(data, n_way=3, k_shot=1, q_queries=2, seed=2)
    assert any(not np.array_equal(a.sample(i).query_indices, c.sample(i).query_indices) for i in range(5))
    # class orders vary: the same class does not always get label 0
    assert len({a.sample(i).classes[0] for i in range(20)}) > 1


def test_too_few_examples_names_the_class_count_and_k_plus_q():
    data = _labelled([10, 3, 10], names=["cat", "dog", "eel"])
    with pytest.raises(DataError, match=r"Class 'dog' has 3 examples .*K \+ Q = 2 \+ 2 = 4"):
        EpisodeSampler(data, n_way=2, k_shot=2, q_queries=2)
    with pytest.raises(DataError, match="can draw from 3 classes but n_way is 4"):
        EpisodeSampler(data, n_way=4, k_shot=1, q_queries=1)


def test_class_splits_are_disjoint_and_rows_follow_their_class():
    names = [f"c{i}" for i in range(10)]
    splits = split_classes(names, n_way=3, seed=0)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (4, 3, 3)
    assert not (
        set(splits.train) & set(splits.validation)
        or set(splits.train) & set(splits.test)
        or set(splits.validation) & set(splits.test)
    )
    assert split_classes(names, n_way=3, seed=0) == splits  # reproducible
    data = _labelled([12] * 10, names)
    rows = split_meta_rows(data, splits)
    y = np.asarray(data["label"])
    for split in ("train", "validation", "test"):
        assert set(y[rows[split]]) == set(getattr(splits, split))
    assert sum(len(r) for r in rows.values()) == len(data)
    # Samplers restricted to their rows never leave their classes
    test = EpisodeSampler(data, 3, 2, 2, rows=rows["test"], classes=splits.test, seed=0)
    assert set(y[test.sample(0).query_indices]) <= set(splits.test)


def test_class_split_by_name_with_held_out_validation_rows():
    names = ["business", "entertainment", "politics", "sport", "tech"]
    splits = split_classes(names, n_way=2, train=["business", "politics", "sport"], test=["entertainment", "tech"])
    assert splits.validation == () and splits.names_of("test") == ["entertainment", "tech"]
    data = _labelled([20] * 5, names)
    rows = split_meta_rows(data, splits, validation_fraction=0.25)
    assert not set(rows["train"]) & set(rows["validation"])
    assert len(rows["validation"]) == 15 and len(rows["train"]) == 45
    y = np.asarray(data["label"])
    assert set(y[rows["validation"]]) == set(splits.train) and set(y[rows["test"]]) == set(splits.test)


def test_class_split_errors():
    names = [f"c{i}" for i in range(5)]
    with pytest.raises(ConfigError, match="meta-test split has 1 classes.*--n_way is 2"):
        split_classes(names, n_way=2, sizes=(3, 0, 1))
    with pytest.raises(ConfigError, match="needs 7 classes but the data has 5"):
        split_classes(names, n_way=2, sizes=(3, 2, 2))
    with pytest.raises(DataError, match=r"--meta_test_classes names unknown classes \['zebra'\]"):
        split_classes(names, n_way=2, train=["c0", "c1"], test=["zebra"])
    with pytest.raises(ConfigError, match="Class 'c1' is in both"):
        split_classes(names, n_way=2, train=["c0", "c1"], test=["c1", "c2"])


# --------------------------------------------------------------------------------------------------
# Evaluation helpers


def test_mean_confidence_interval():
    mean, ci = mean_confidence_interval([0.5, 0.7, 0.6, 0.8])
    assert mean == pytest.approx(0.65)
    assert ci == pytest.approx(1.96 * np.std([0.5, 0.7, 0.6, 0.8], ddof=1) / 2)


def _vector_episodes(n_way=3):
    """Gaussian blobs as a 'data set' whose rows collate to {"x": (B, 4)}."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 4)) * 3
    labels = np.repeat(np.arange(6), 10)
    points = centres[labels] + rng.normal(size=(60, 4))
    data = Dataset.from_dict({"x": points.tolist(), "label": labels.tolist()})
    collate = lambda rows: {"x": torch.tensor([r["x"] for r in rows], dtype=torch.float64)}  # noqa: E731
    return EpisodeDataset(EpisodeSampler(data, n_way, 2, 3, seed=0), data, collate, 10)


def test_cached_features_give_the_same_accuracies_as_per_episode_forwards():
    episodes = _vector_episodes()
    _, maml = build(MLP, inner_steps=3, inner_lr=0.5, adapt="head")
    cached = episode_accuracies(maml, episodes, range(10), disable_tqdm=True)
    maml._feature_path_ok = False  # generic path, one full forward per inner step
    per_episode = episode_accuracies(maml, episodes, range(10), disable_tqdm=True)
    assert cached == pytest.approx(per_episode)
    probe = probe_accuracies(maml, episodes, range(10), l2_grid=[1e-2, 1.0], disable_tqdm=True)
    assert set(probe) == {1e-2, 1.0} and all(len(v) == 10 for v in probe.values())


# --------------------------------------------------------------------------------------------------
# The outer loop: checkpoints (accelerate's save_state / load_state) and trackers


def _meta_trainer(output_dir, max_steps, **training_args):
    """MAMLTrainer on the MLP and Gaussian-blob episodes: seeded, deterministic, a constant outer learning rate."""
    from transformers import TrainingArguments

    from hf_transfer.meta import MAMLTrainer

    _, maml = build(MLP, inner_steps=2, inner_lr=0.5)
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=max_steps,
        save_steps=1,
        learning_rate=0.05,
        lr_scheduler_type="constant",
        logging_steps=1,
        use_cpu=True,
        disable_tqdm=True,
        **{"report_to": "none", **training_args},
    )
    episodes = _vector_episodes()
    return MAMLTrainer(maml, args, episodes, episodes, meta_batch_size=2, num_eval_episodes=4)


def test_resumed_meta_training_continues_exactly_where_it_stopped(tmp_path):
    """The weights, optimizer (Adam's moments) and scheduler of checkpoint-2 restored: the third meta-iteration is the
    one an uninterrupted run takes."""
    from safetensors.torch import load_file

    _meta_trainer(tmp_path / "whole", 3).train()
    _meta_trainer(tmp_path / "resumed", 2).train()
    resumed = _meta_trainer(tmp_path / "resumed", 3)
    metrics = resumed.train(resume_from_checkpoint=str(tmp_path / "resumed" / "checkpoint-2"))
    assert metrics["resumed_from_step"] == 2 and metrics["meta_iterations"] == 3
    weights = {run: load_file(tmp_path / run / "checkpoint-3" / "maml.safetensors") for run in ("whole", "resumed")}
    before = load_file(tmp_path / "whole" / "checkpoint-2" / "maml.safetensors")
    assert not torch.equal(weights["whole"]["model.body.weight"], before["model.body.weight"])  # step 3 did train
    for name, value in weights["whole"].items():
        torch.testing.assert_close(weights["resumed"][name], value, rtol=0, atol=1e-12, msg=name)
    history = {
        run: [
            e for e in json.loads((tmp_path / run / "checkpoint-3" / "trainer_state.json").read_text())["log_history"]
        ]
        for run in ("whole", "resumed")
    }
    losses = {run: [e["meta_loss"] for e in entries if "meta_loss" in e] for run, entries in history.items()}
    assert len(losses["resumed"]) == 3 and losses["resumed"] == pytest.approx(losses["whole"], rel=1e-12)


@pytest.mark.parametrize(
    "limit, best, kept",
    [(2, 4, {4, 8, 10}), (2, 10, {8, 10}), (2, None, {8, 10}), (1, 2, {2, 10}), (3, 6, {6, 8, 10}), (None, 2, None)],
)
def test_checkpoint_rotation_keeps_the_newest_and_the_best(tmp_path, limit, best, kept):
    """`--save_total_limit` newest checkpoints, and the best one on top when it is older (by step, not by name)."""
    from hf_transfer.meta.checkpoints import rotate_meta_checkpoints

    steps = {2, 4, 6, 8, 10}
    for step in steps:
        (tmp_path / f"checkpoint-{step}").mkdir()
    rotate_meta_checkpoints(tmp_path, limit, best)
    assert {int(p.name.split("-")[1]) for p in tmp_path.iterdir()} == (kept or steps)


def test_a_checkpoint_of_the_earlier_format_is_a_config_error(tmp_path):
    from hf_transfer.meta.checkpoints import load_checkpoint

    (tmp_path / "optimizer.pt").write_bytes(b"")
    (tmp_path / "trainer_state.json").write_text("{}")
    with pytest.raises(ConfigError, match="earlier hf_transfer.*new --output_dir"):
        load_checkpoint(None, None, tmp_path)


def test_trackers_end_with_training_but_the_process_group_stays_for_the_meta_test(tmp_path):
    """`Accelerator.end_training` would destroy the process group, and the meta-test after training gathers its
    episodes through it (a run on several processes with --report_to stopped there)."""
    import torch.distributed as dist

    trainer = _meta_trainer(tmp_path / "out", 1, report_to="tensorboard")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        trainer.train()
        assert dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    assert list((tmp_path / "out" / "runs").rglob("events.out.tfevents.*"))  # the trackers did log, and were closed


# --------------------------------------------------------------------------------------------------
# Config errors


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"inner_steps": 0}, "--inner_steps must be a positive integer"),
        ({"eval_inner_steps": 0}, "--eval_inner_steps must be a positive integer"),
        ({"inner_lr": 0.0}, "--inner_lr must be positive"),
        ({"adapt": "body"}, "--adapt 'body' is not one of all, head, lora, lora_and_head"),
        ({"batch_norm": "frozen"}, "--batch_norm 'frozen' is not one of batch, running"),
        ({"inner_lr_granularity": "layer"}, "--inner_lr_granularity 'layer' is not one of element, tensor"),
    ],
)
def test_maml_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        MAMLConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_way": 1}, "--n_way must be at least 2"),
        ({"k_shot": 0}, "--k_shot must be a positive integer"),
        ({"class_split": [3, 2]}, "--class_split takes three non-negative sizes"),
        ({"class_split": [3, 1, 1], "meta_test_classes": ["a"]}, "either --class_split or the --meta_\\*_classes"),
        ({"meta_validation_fraction": 1.0}, "--meta_validation_fraction must be strictly between 0 and 1"),
        ({"max_samples_per_class": 5, "k_shot": 1, "q_queries": 15}, "below K \\+ Q = 1 \\+ 15"),
    ],
)
def test_episode_arguments_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        EpisodeArguments(**kwargs)


class _RunsCodeWhenUnpickled:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_checkpoint_never_runs_code_from_its_optimizer_file(tmp_path):
    """The optimizer and scheduler are read back with `weights_only=True` (accelerate's registered objects would be
    unpickled with `weights_only=False`: a checkpoint folder could run code on resume)."""
    import torch
    from safetensors.torch import save_model

    from hf_transfer.meta.checkpoints import WEIGHTS_NAME, load_checkpoint

    marker = tmp_path / "code-ran"
    checkpoint = tmp_path / "checkpoint-1"
    checkpoint.mkdir()
    model = torch.nn.Linear(2, 2)
    save_model(model, str(checkpoint / WEIGHTS_NAME))
    (checkpoint / "random_states_0.pkl").write_bytes(b"")
    (checkpoint / "trainer_state.json").write_text("{}")
    torch.save(_RunsCodeWhenUnpickled(marker), checkpoint / "optimizer.pt")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(Exception, match="[Ww]eights only"):
        load_checkpoint(None, model, checkpoint, {"optimizer": optimizer})
    assert not marker.exists()
