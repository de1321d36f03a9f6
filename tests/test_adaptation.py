"""hf_transfer.adaptation: alignment losses against straightforward references (MCC and CDAN against hand-computed
cases), gradient reversal, the warm-up schedule, config errors, domain checks, source/target pairing, digits_m, the
A-distance, and the trainer (alignment and target self-training) on a tiny random BERT."""

import math
import warnings

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, Value
from transformers import AutoTokenizer, TrainingArguments

from gloo_workers import run_gloo_workers
from hf_transfer.adaptation import (
    ALIGNMENT_STATE_NAME,
    CDANLoss,
    CORALLoss,
    DANNLoss,
    DomainAdaptationArguments,
    DomainAdaptationModel,
    DomainAdaptationTrainer,
    DomainPairCollator,
    DomainPairDataset,
    GradientReversal,
    MCCLoss,
    MMDLoss,
    SourceDataArguments,
    TargetDataArguments,
    align_domains,
    check_transfer_strategy,
    create_alignment_loss,
    ganin_coefficient,
    grad_reverse,
    load_domain_dataset,
    proxy_a_distance,
)
from hf_transfer.adaptation.losses import multilinear_map
from hf_transfer.data import DataArguments, load_transfer_dataset
from hf_transfer.errors import ConfigError, DataError
from hf_transfer.finetuning import LoraArguments, create_lora_model
from hf_transfer.models import create_classification_model
from hf_transfer.processing import create_collator, preprocess_dataset
from hf_transfer.pseudo_labels import ClassThresholds

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _domains(n_source=6, n_target=6, d=5, shift=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    source = torch.randn(n_source, d, generator=g, dtype=torch.float64)
    target = torch.randn(n_target, d, generator=g, dtype=torch.float64) * 1.5 + shift
    labels = torch.tensor([0] * n_source + [1] * n_target)
    return source, target, labels


# ------------------------------------------------------------------------------ gradient reversal, schedule


def test_gradient_reversal_is_identity_forward_and_scales_gradient_by_minus_coefficient():
    x = torch.randn(4, 3, requires_grad=True)
    weights = torch.randn(4, 3)
    y = grad_reverse(x, 0.3)
    torch.testing.assert_close(y, x)
    (y * weights).sum().backward()
    torch.testing.assert_close(x.grad, -0.3 * weights)

    layer = GradientReversal(1.0)
    layer.coefficient = 2.0  # may change between steps
    x.grad = None
    (layer(x) * weights).sum().backward()
    torch.testing.assert_close(x.grad, -2.0 * weights)


def test_ganin_schedule_values():
    assert ganin_coefficient(0.0) == 0.0
    assert ganin_coefficient(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert ganin_coefficient(0.1) == pytest.approx(2 / (1 + math.exp(-1)) - 1)  # 0.4621
    assert ganin_coefficient(0.5, gamma=2.0) == pytest.approx(2 / (1 + math.exp(-1)) - 1)
    values = [ganin_coefficient(p / 20) for p in range(21)]
    assert all(a < b for a, b in zip(values, values[1:])) and values[-1] < 1.0
    assert ganin_coefficient(-1.0) == 0.0 and ganin_coefficient(2.0) == ganin_coefficient(1.0)  # clamped


# ------------------------------------------------------------------------------------------- losses


def test_dann_loss_is_discriminator_bce_with_reversed_feature_gradient():
    torch.manual_seed(0)
    loss_fn = DANNLoss(feature_dim=5, hidden_size=7, dropout=0.0, coefficient=0.7)
    source, target, labels = _domains()
    features = torch.cat([source, target]).float().requires_grad_(True)
    loss = loss_fn(features, labels)

    # Reference: the same discriminator without reversal, BCE written out.
    reference_features = features.detach().clone().requires_grad_(True)
    p = torch.sigmoid(loss_fn.discriminator(reference_features).squeeze(-1))
    d = labels.float()
    reference = -(d * torch.log(p) + (1 - d) * torch.log(1 - p)).mean()
    torch.testing.assert_close(loss, reference)

    discriminator_grads = torch.autograd.grad(reference, [reference_features, *loss_fn.discriminator.parameters()])
    loss.backward()
    torch.testing.assert_close(features.grad, -0.7 * discriminator_grads[0])  # reversed and scaled
    for param, expected in zip(loss_fn.discriminator.parameters(), discriminator_grads[1:]):
        torch.testing.assert_close(param.grad, expected)  # the discriminator itself is not reversed


def _reference_coral(source: np.ndarray, target: np.ndarray) -> float:
    def covariance(x):
        n = len(x)
        ones = np.ones((1, n))
        return (x.T @ x - (ones @ x).T @ (ones @ x) / n) / (n - 1)

    d = source.shape[1]
    return float(np.sum((covariance(source) - covariance(target)) ** 2) / (4 * d * d))


def test_coral_loss_matches_the_paper_formula_and_invariants():
    source, target, labels = _domains(n_source=7, n_target=5, d=4)
    features = torch.cat([source, target])
    loss = CORALLoss()(features, labels)
    assert float(loss) == pytest.approx(_reference_coral(source.numpy(), target.numpy()), rel=1e-5)
    # Row order does not matter, only domain membership.
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(CORALLoss()(features[perm], labels[perm]), loss)
    # Zero for equal covariances; a shift of one domain changes nothing (covariances are centred).
    assert float(CORALLoss()(torch.cat([source, source]), torch.tensor([0] * 7 + [1] * 7))) == pytest.approx(
        0.0, abs=1e-7
    )
    torch.testing.assert_close(CORALLoss()(torch.cat([source, target + 3.0]), labels), loss)


def _reference_mmd(source: np.ndarray, target: np.ndarray, num_kernels=5, kernel_mul=2.0, linear=False) -> float:
    pooled = np.concatenate([source, target])
    n_all = len(pooled)
    distances = [[float(np.sum((a - b) ** 2)) for b in pooled] for a in pooled]
    base = sum(distances[i][j] for i in range(n_all) for j in range(n_all) if i != j) / (n_all * n_all - n_all)
    sigmas = [base * kernel_mul ** (u - num_kernels // 2) for u in range(num_kernels)]

    def k(a, b):
        squared = float(np.sum((a - b) ** 2))
        return sum(math.exp(-squared / (2 * s)) for s in sigmas) / num_kernels

    n, m = len(source), len(target)
    if linear:
        total = 0.0
        for i in range(n // 2):
            x1, x2, y1, y2 = source[2 * i], source[2 * i + 1], target[2 * i], target[2 * i + 1]
            total += k(x1, x2) + k(y1, y2) - k(x1, y2) - k(x2, y1)
        return 2.0 / n * total
    xx = sum(k(a, b) for a in source for b in source) / (n * n)
    yy = sum(k(a, b) for a in target for b in target) / (m * m)
    xy = sum(k(a, b) for a in source for b in target) / (n * m)
    return xx + yy - 2 * xy


@pytest.mark.parametrize("estimator", ["biased", "linear"])
def test_mmd_loss_matches_a_double_loop_reference(estimator):
    n_target = 6 if estimator == "linear" else 4
    source, target, labels = _domains(n_source=6, n_target=n_target, d=3, shift=0.8)
    loss = MMDLoss(num_kernels=5, kernel_mul=2.0, estimator=estimator)(torch.cat([source, target]), labels)
    expected = _reference_mmd(source.numpy(), target.numpy(), linear=estimator == "linear")
    assert float(loss) == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_mmd_loss_invariants():
    source, target, labels = _domains(n_source=8, n_target=8, d=4, shift=2.0)
    mmd = MMDLoss()
    shifted = float(mmd(torch.cat([source, target]), labels))
    assert shifted > 0.05
    assert float(mmd(torch.cat([source, source]), labels)) == pytest.approx(0.0, abs=1e-7)
    # Bandwidths follow the data's scale, so a global rescaling leaves the loss unchanged.
    assert float(mmd(10.0 * torch.cat([source, target]), labels)) == pytest.approx(shifted, rel=1e-5)


def test_losses_reject_batches_without_both_domains_and_describe_themselves():
    features = torch.randn(4, 3)
    for loss_fn in (DANNLoss(3), CORALLoss(), MMDLoss()):
        with pytest.raises(ValueError, match="at least 2 source and 2 target rows"):
            loss_fn(features, torch.tensor([0, 0, 0, 1]))
        assert "@" in loss_fn.citation and isinstance(loss_fn.get_config_dict(), dict)
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        CORALLoss()(torch.randn(4, 3, 2), torch.tensor([0, 0, 1, 1]))
    assert DANNLoss(3, hidden_size=8).get_config_dict() == {"feature_dim": 3, "hidden_size": 8, "dropout": 0.5}
    assert isinstance(create_alignment_loss("mmd", 3, mmd_num_kernels=3), MMDLoss)
    assert create_alignment_loss("source_only", 3) is None


# ------------------------------------------------------------------------------------ MCC and CDAN


def test_mcc_is_zero_for_one_hot_and_c_minus_one_over_c_for_uniform_target_predictions():
    domains = torch.tensor([0, 0, 1, 1, 1, 1])
    confident = torch.zeros(6, 4)
    confident[torch.arange(6), torch.tensor([0, 1, 0, 1, 2, 3])] = 1e4  # one-hot after any temperature
    assert float(MCCLoss(temperature=2.5)(confident, domains)) == pytest.approx(0.0, abs=1e-6)
    # Uniform rows: the row-normalised confusion is 1/C everywhere, its off-diagonal sum C(C-1)/C, over C.
    assert float(MCCLoss()(torch.zeros(6, 4), domains)) == pytest.approx(3 / 4)
    assert float(MCCLoss()(torch.zeros(6, 10), domains)) == pytest.approx(9 / 10)


def test_mcc_matches_a_hand_computed_two_class_case_and_reads_only_target_rows():
    # Two target rows with T = 1: p1 = (3/4, 1/4), p2 = (1/2, 1/2).
    target = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])
    h1 = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    h2 = math.log(2.0)
    w1, w2 = 1 + math.exp(-h1), 1 + math.exp(-h2)
    w1, w2 = 2 * w1 / (w1 + w2), 2 * w2 / (w1 + w2)
    m00 = w1 * 0.75 * 0.75 + w2 * 0.25
    m01 = w1 * 0.75 * 0.25 + w2 * 0.25
    m11 = w1 * 0.25 * 0.25 + w2 * 0.25
    expected = (m01 / (m00 + m01) + m01 / (m01 + m11)) / 2
    source = torch.randn(2, 2, requires_grad=True)
    logits = torch.cat([source, target.requires_grad_()])
    loss = MCCLoss(temperature=1.0)(logits, torch.tensor([0, 0, 1, 1]))
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert source.grad.abs().sum() == 0 and target.grad.abs().sum() > 0  # source rows play no part
    assert MCCLoss(3.0).get_config_dict() == {"temperature": 3.0} and MCCLoss.inputs == ("logits",)


def test_multilinear_map_is_the_flattened_outer_product_and_the_randomized_map_its_sketch():
    features = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    predictions = torch.tensor([[0.25, 0.75], [1.0, 0.0]])
    torch.testing.assert_close(
        multilinear_map(features, predictions), torch.tensor([[0.25, 0.5, 0.75, 1.5], [3.0, -1.0, 0.0, 0.0]])
    )
    assert CDANLoss(2, 2).conditional_map(features, predictions).shape == (2, 4)
    assert not CDANLoss(64, 64).randomized and CDANLoss(65, 64).randomized  # 4096 entries is the default limit

    torch.manual_seed(0)
    cdan = CDANLoss(3, 2, randomized=True, randomized_dim=20000)
    f = torch.randn(2, 3)
    mapped = cdan.conditional_map(f, predictions)
    assert mapped.shape == (2, 20000)
    expected = (f @ cdan.feature_projection) * (predictions @ cdan.prediction_projection) / math.sqrt(20000)
    torch.testing.assert_close(mapped, expected)
    # Inner products of the sketch approximate those of f ⊗ g: <f, f'> <g, g'>.
    exact = multilinear_map(f, predictions)
    torch.testing.assert_close(mapped @ mapped.T, exact @ exact.T, atol=0.5, rtol=0.1)
    assert set(cdan.state_dict()) >= {"feature_projection", "prediction_projection"}  # saved with the checkpoint


def test_cdan_reverses_the_gradient_into_the_features_only_and_weights_rows_by_entropy():
    torch.manual_seed(0)
    features = torch.randn(6, 3, requires_grad=True)
    logits = torch.randn(6, 2, requires_grad=True)
    domains = torch.tensor([0, 0, 0, 1, 1, 1])
    cdan = CDANLoss(3, 2, hidden_size=4, dropout=0.0, coefficient=0.3)
    loss = cdan(features, logits, domains)
    loss.backward()
    assert logits.grad is None  # predictions condition the discriminator as constants

    # Reference without reversal: the same discriminator on f ⊗ softmax(z), entropy-weighted BCE.
    f = features.detach().clone().requires_grad_()
    g = torch.softmax(logits.detach(), dim=1)
    entropy = -(g * g.log()).sum(1)
    weights = 1 + torch.exp(-entropy)
    domain_logits = cdan.adversary.discriminator(multilinear_map(f, g)).squeeze(-1)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(domain_logits, domains.float(), reduction="none")
    reference = (weights * bce).sum() / weights.sum()
    reference.backward()
    torch.testing.assert_close(loss.detach(), reference.detach())
    torch.testing.assert_close(features.grad, -0.3 * f.grad)

    plain = CDANLoss(3, 2, hidden_size=4, dropout=0.0, entropy_conditioning=False)
    plain.load_state_dict(cdan.state_dict())
    torch.testing.assert_close(plain(features, logits, domains).detach(), bce.mean().detach())
    assert CDANLoss.inputs == ("features", "logits") and CDANLoss.adversarial
    with pytest.raises(ValueError, match="built for 2 classes"):
        cdan(features, torch.randn(6, 3), domains)


def test_cdan_is_built_from_its_entry_with_the_feature_width_and_the_classes():
    cdan = create_alignment_loss("cdan", 5, 3, dann_hidden_size=8, cdan_entropy_conditioning=False, mmd_num_kernels=2)
    assert isinstance(cdan, CDANLoss)
    assert cdan.get_config_dict() == {
        "feature_dim": 5,
        "num_labels": 3,
        "hidden_size": 8,
        "dropout": 0.5,
        "entropy_conditioning": False,
        "randomized": False,
        "randomized_dim": 1024,
    }
    assert isinstance(create_alignment_loss("mcc", 5, 3, mcc_temperature=2.0), MCCLoss)
    with pytest.raises(ValueError, match="needs num_labels"):
        create_alignment_loss("cdan", 5)


class _Recording(torch.nn.Module):
    """An alignment loss that records what the model passes it."""

    def __init__(self, inputs):
        super().__init__()
        self.inputs, self.seen = inputs, None

    def forward(self, *args):
        self.seen = args
        return args[0].sum() * 0


@pytest.mark.parametrize("inputs", [("features",), ("logits",), ("features", "logits")])
def test_the_model_passes_the_outputs_the_loss_names(inputs):
    torch.manual_seed(0)
    body, head = torch.nn.Linear(5, 4), torch.nn.Linear(4, 3)

    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.classifier = body, head

        def forward(self, x):
            from types import SimpleNamespace

            return SimpleNamespace(logits=self.classifier(self.body(x)))

    loss = _Recording(inputs)
    x, domains = torch.randn(4, 5), torch.tensor([0, 0, 1, 1])
    out = DomainAdaptationModel(Classifier(), loss)(x=x, domain_labels=domains)
    expected = {"features": body(x), "logits": head(body(x))}
    assert len(loss.seen) == len(inputs) + 1 and loss.seen[-1] is domains
    for name, seen in zip(inputs, loss.seen):
        torch.testing.assert_close(seen, expected[name])
    assert float(DomainAdaptationModel(Classifier())(x=x, domain_labels=domains).alignment_loss) == 0.0
    torch.testing.assert_close(out.logits, expected["logits"])


# --------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "adabn"}, "--method 'adabn' is not one of source_only, dann, coral, mmd, mcc, cdan, target_oracle"),
        ({"alignment_weight": 0.0}, "--alignment_weight 0.0 must be positive; use --method source_only"),
        ({"alignment_schedule": "linear"}, "--alignment_schedule 'linear' must be `ganin` or `constant`"),
        ({"schedule_gamma": -1.0}, "--schedule_gamma -1.0 must be positive"),
        ({"alignment_learning_rate": 0.0}, "--alignment_learning_rate 0.0 must be positive"),
        ({"dann_dropout": 1.0}, r"--dann_dropout 1.0 must be in \[0, 1\)"),
        ({"mmd_kernel_mul": 1.0}, "--mmd_kernel_mul 1.0 must be > 1 to spread 5 kernels"),
        ({"mmd_estimator": "unbiased"}, "--mmd_estimator 'unbiased' must be `biased` or `linear`"),
        ({"a_distance_max_samples": 5}, "--a_distance_max_samples 5 is too few"),
        ({"mcc_temperature": 0.0}, "--mcc_temperature 0.0 must be positive"),
        ({"cdan_randomized_dim": 0}, "--cdan_randomized_dim 0 must be positive"),
        ({"self_training_threshold": 1.5}, r"--self_training_threshold 1.5 must lie in \(0, 1\]"),
        ({"self_training_min_threshold": 0.99}, r"--self_training_min_threshold 0.99 must lie in \[0, "),
        ({"self_training_weight": 0.0}, "--self_training_weight 0.0 must be positive"),
        ({"self_training_start": 1.0}, r"--self_training_start 1.0 must lie in \[0, 1\)"),
        (
            {"target_self_training": True, "self_training_class_quota": 1.5},
            r"--self_training_class_quota 1.5 must lie in \(0, 1\]",
        ),
        (
            {"target_self_training": True, "self_training_class_prior": "target"},
            "--self_training_class_prior 'target' must be `uniform` or `source`",
        ),
        (
            {"self_training_distribution_alignment": True},
            "balance the pseudo-labels of target self-training: add --target_self_training true",
        ),
        (
            {"method": "target_oracle", "target_self_training": True},
            "--target_self_training has no unlabelled target rows to pseudo-label with --method target_oracle",
        ),
    ],
)
def test_domain_adaptation_arguments_reject_bad_values(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DomainAdaptationArguments(**kwargs)


def test_ignored_alignment_weight_warns_and_strategies_are_checked():
    with pytest.warns(UserWarning, match="--alignment_weight is ignored by --method source_only"):
        DomainAdaptationArguments(method="source_only", alignment_weight=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert DomainAdaptationArguments(method="coral").uses_alignment
    with pytest.raises(ConfigError, match="--strategy linear_probe does not train the backbone"):
        check_transfer_strategy("linear_probe")
    check_transfer_strategy("lora")


def test_prefixed_data_arguments_name_their_own_flags(tmp_path):
    args = SourceDataArguments(source_dataset_name="digits", source_max_train_samples=10)
    assert args.to_data_arguments() == DataArguments(dataset_name="digits", max_train_samples=10)
    with pytest.raises(DataError, match="^Source data: No data source given. Pass --source_dataset_name"):
        SourceDataArguments()
    with pytest.raises(DataError, match="Target data: --target_train_file '.*missing.csv' does not exist"):
        TargetDataArguments(target_train_file=str(tmp_path / "missing.csv"))
    with pytest.raises(DataError, match="--target_max_train_samples must be a positive integer"):
        TargetDataArguments(target_dataset_name="digits_m", target_max_train_samples=0)


# ------------------------------------------------------------------------------------ domain checks


def _text_domain(names, rows):
    features = Features({"text": Value("string"), "label": ClassLabel(names=names)})
    data = {"text": [f"row {i}" for i in range(len(rows))], "label": rows}
    return DatasetDict(
        {"train": Dataset.from_dict(data, features=features), "validation": Dataset.from_dict(data, features=features)}
    )


def test_mismatched_label_sets_fail_with_the_difference_and_the_fix():
    source = _text_domain(["negative", "neutral", "positive"], [0, 1, 2])
    target = _text_domain(["business", "neutral", "sport"], [0, 1, 2])
    with pytest.raises(
        DataError,
        match=r"label sets differ: only in the source \['negative', 'positive'\], "
        r"only in the target \['business', 'sport'\].*rename the target's labels",
    ):
        align_domains(source, target)


def test_mismatched_modalities_fail():
    source = _text_domain(["a", "b"], [0, 1])
    features = Features({"image": Image(), "label": ClassLabel(names=["a", "b"])})
    pixels = [np.zeros((4, 4), dtype=np.uint8)] * 2
    images = DatasetDict({"train": Dataset.from_dict({"image": pixels, "label": [0, 1]}, features=features)})
    with pytest.raises(DataError, match="source domain is text but the target domain is vision"):
        align_domains(source, images)


def test_reordered_target_labels_get_the_source_ids():
    source = _text_domain(["negative", "neutral", "positive"], [0, 1, 2])
    target = _text_domain(["positive", "negative", "neutral"], [0, 1, 2])  # rows: positive, negative, neutral
    aligned = align_domains(source, target)
    assert aligned["train"].features["label"].names == ["negative", "neutral", "positive"]
    assert aligned["train"]["label"] == [2, 0, 1] and aligned["validation"]["label"] == [2, 0, 1]


# ------------------------------------------------------------------------------------------- pairing


def test_pair_dataset_visits_the_larger_domain_once_and_hides_target_labels():
    source = [{"x": i, "label": i % 3} for i in range(10)]
    target = [{"x": 100 + i, "label": 1} for i in range(4)]
    pairs = DomainPairDataset(source, target, seed=0)
    assert len(pairs) == 10
    items = pairs.__getitems__(list(range(10)))
    assert sorted(item["source"]["x"] for item in items) == list(range(10))
    target_rows = [item["target"]["x"] for item in items]
    assert set(target_rows) == {100, 101, 102, 103} and all("label" not in item["target"] for item in items)
    assert DomainPairDataset(source, target, seed=0).__getitems__([3]) == pairs.__getitems__([3])  # seeded

    collate = DomainPairCollator(lambda rows: {"x": torch.tensor([r["x"] for r in rows])})
    batch = collate(items[:3])
    assert batch["x"].tolist() == [0, 1, 2, *target_rows[:3]]
    assert batch["labels"].tolist() == [0, 1, 2] and batch["domain_labels"].tolist() == [0, 0, 0, 1, 1, 1]
    assert set(collate([{"x": 5, "label": 1}])) == {"x"}  # plain items pass through


# ------------------------------------------------------------------------------------------ digits_m


def test_digits_m_is_deterministic_and_keeps_the_digits_splits():
    args = DataArguments(dataset_name="digits_m", max_train_samples=30, max_eval_samples=20)
    shifted = load_domain_dataset(args)
    again = load_domain_dataset(args)
    digits = load_transfer_dataset(DataArguments(dataset_name="digits", max_train_samples=30, max_eval_samples=20))
    assert {s: len(d) for s, d in shifted.items()} == {"train": 30, "validation": 20, "test": 20}
    for split in shifted:
        assert shifted[split]._fingerprint == again[split]._fingerprint
        assert shifted[split]["label"] == digits[split]["label"]
    image, first_again = shifted["train"][0]["image"], again["train"][0]["image"]
    assert image.mode == "RGB" and image.size == (32, 32)
    assert np.array_equal(np.asarray(image), np.asarray(first_again))
    assert np.asarray(image).std(axis=2).mean() > 5  # coloured, unlike the grey source digits
    assert shifted["train"].features["label"].names == [str(i) for i in range(10)]
    with pytest.raises(DataError, match="^Target data: Cannot carve .* Change --target_validation_split_percentage"):
        load_domain_dataset(DataArguments(dataset_name="digits_m", validation_split_percentage=0.999), prefix="target")


# -------------------------------------------------------------------------------------- A-distance


def test_proxy_a_distance_is_near_zero_for_one_distribution_and_two_for_separable_ones():
    g = torch.Generator().manual_seed(0)
    same = proxy_a_distance(torch.randn(200, 4, generator=g), torch.randn(200, 4, generator=g))
    assert same.value < 0.5 and same.num_samples == 200 and same.num_test == 100
    apart = proxy_a_distance(torch.randn(200, 4, generator=g), torch.randn(200, 4, generator=g) + 5.0)
    assert apart.value == pytest.approx(2.0) and apart.error == 0.0
    assert proxy_a_distance(torch.randn(300, 4), torch.randn(100, 4), max_samples=60).num_samples == 60


# ------------------------------------------------------------------------------------------- trainer


@pytest.fixture(scope="module")
def text_domains(tiny_bert):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    names = ["negative", "neutral", "positive"]
    source = _text_domain(names, [i % 3 for i in range(24)])
    target = DatasetDict(
        {
            split: ds.map(lambda b: {"text": [t + " with a longer tail of words" for t in b["text"]]}, batched=True)
            for split, ds in _text_domain(names, [0, 1, 2] * 4).items()
        }
    )
    return (
        tokenizer,
        preprocess_dataset(source, tokenizer, "text", 32),
        preprocess_dataset(target, tokenizer, "text", 32),
    )


def _trainer(model, tokenizer, source, target, tmp_path, alignment_loss, self_training=None, **kwargs):
    args = TrainingArguments(
        **{
            "output_dir": str(tmp_path),
            "per_device_train_batch_size": 4,
            "learning_rate": 1e-2,
            "report_to": "none",
            "logging_steps": 1,
            "save_strategy": "no",
            "use_cpu": True,
            **kwargs,
        }
    )
    return DomainAdaptationTrainer(
        model=model,
        args=args,
        train_dataset=DomainPairDataset(source["train"], target["train"]),
        data_collator=create_collator(tokenizer, "text"),
        alignment_loss=alignment_loss,
        alignment_schedule="constant",
        alignment_weight=0.5,
        self_training=self_training,
        self_training_weight=2.0,
    )


def test_trainer_loss_is_task_loss_plus_weighted_alignment_on_head_inputs(tiny_bert, text_domains, tmp_path):
    tokenizer, source, target = text_domains
    model = create_classification_model(tiny_bert, ["negative", "neutral", "positive"]).eval()
    trainer = _trainer(model, tokenizer, source, target, tmp_path, CORALLoss())
    batch = trainer.data_collator(trainer.train_dataset.__getitems__([0, 1, 2, 3]))
    assert batch["input_ids"].shape[0] == 8 and batch["labels"].shape == (4,)
    assert trainer.model.task_model is model and trainer.task_model is model
    loss = trainer.compute_loss(trainer.model, dict(batch))

    with torch.no_grad():  # reference: BERT's head sees the pooler output (dropout is off in eval mode)
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "domain_labels")}
        pooled = model.bert(**inputs).pooler_output  # (8, 32)
        logits = model.classifier(pooled)
    expected = torch.nn.functional.cross_entropy(logits[:4], batch["labels"]) + 0.5 * CORALLoss()(
        pooled, batch["domain_labels"]
    )
    torch.testing.assert_close(loss.detach(), expected)


@pytest.mark.parametrize("strategy", ["full", "lora"])
def test_trainer_trains_model_and_discriminator_and_saves_its_state(tiny_bert, text_domains, tmp_path, strategy):
    tokenizer, source, target = text_domains
    torch.manual_seed(0)
    model = create_classification_model(tiny_bert, ["negative", "neutral", "positive"])
    if strategy == "lora":
        model = create_lora_model(model, LoraArguments(lora_r=2))
    dann = DANNLoss(32, hidden_size=8)
    discriminator_before = [p.detach().clone() for p in dann.parameters()]
    trainable_before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    trainer = _trainer(
        model,
        tokenizer,
        source,
        target,
        tmp_path,
        dann,
        max_steps=3,
        save_strategy="steps",
        save_steps=3,
        label_names=["labels"],
    )
    trainer.train()

    logs = [entry for entry in trainer.state.log_history if "alignment_loss" in entry]
    assert len(logs) == 3 and all(entry["alignment_coefficient"] == 0.5 for entry in logs)
    assert all(abs(entry["alignment_loss"] - math.log(2)) < 0.3 for entry in logs)  # BCE near chance
    assert any(not torch.equal(a, b) for a, b in zip(discriminator_before, dann.parameters()))
    assert any(not torch.equal(trainable_before[n], p) for n, p in model.named_parameters() if p.requires_grad)
    assert all(p.grad is None for p in dann.parameters())  # zeroed after each step
    # The discriminator is a submodule of what the engine wraps, in its own optimizer group.
    wrapped = {id(p) for p in trainer.model.parameters()}
    assert all(id(p) in wrapped for p in dann.parameters())
    (group,) = [
        g for g in trainer.optimizer.param_groups if any(p is dann.discriminator[0].weight for p in g["params"])
    ]
    assert group["initial_lr"] == 1e-2 and len(group["params"]) == len(list(dann.parameters()))

    # The discriminator is saved with the checkpoint and restored on resume.
    checkpoint = tmp_path / "checkpoint-3"
    assert (checkpoint / ALIGNMENT_STATE_NAME).is_file()
    fresh = DANNLoss(32, hidden_size=8)
    resumed = _trainer(model, tokenizer, source, target, tmp_path, fresh, max_steps=3, label_names=["labels"])
    resumed.train(resume_from_checkpoint=str(checkpoint))
    for saved, loaded in zip(dann.state_dict().values(), fresh.state_dict().values()):
        torch.testing.assert_close(saved, loaded)


def test_self_training_adds_the_pseudo_label_cross_entropy_of_target_rows_above_their_threshold(
    tiny_bert, text_domains, tmp_path
):
    tokenizer, source, target = text_domains
    model = create_classification_model(tiny_bert, ["negative", "neutral", "positive"]).eval()
    # Threshold 0 passes every row: each target row is pseudo-labelled with its arg-max class.
    thresholds = ClassThresholds(3, len(target["train"]), threshold=1e-6, min_threshold=0.0)
    trainer = _trainer(model, tokenizer, source, target, tmp_path, MCCLoss(), self_training=thresholds)
    batch = trainer.data_collator(trainer.train_dataset.__getitems__([0, 1, 2, 3]))
    assert batch["target_rows"].shape == (4,)
    loss = trainer.compute_loss(trainer.model, dict(batch))
    with torch.no_grad():
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "domain_labels", "target_rows")}
        logits = model(**inputs).logits  # (8, 3)
    expected = (
        torch.nn.functional.cross_entropy(logits[:4], batch["labels"])
        + 0.5 * MCCLoss()(logits, batch["domain_labels"])
        + 2.0 * torch.nn.functional.cross_entropy(logits[4:], logits[4:].argmax(1))
    )
    torch.testing.assert_close(loss.detach(), expected)
    summary = trainer.pseudo_label_summary()
    assert summary["target_pseudo_labelled_rows"] == len(set(batch["target_rows"].tolist()))
    assert summary["target_pseudo_label_pool_rows"] == len(target["train"])
    assert sum(summary["target_pseudo_labelled_per_class"]) == summary["target_pseudo_labelled_rows"]
    assert summary["target_pseudo_label_thresholds"] == [0.0, 0.0, 0.0]
    kept = trainer.pseudo_labels()
    assert kept[batch["target_rows"]].tolist() == logits[4:].argmax(1).tolist()

    # An unreachable threshold keeps no row, and the term is 0.
    strict = ClassThresholds(3, len(target["train"]), threshold=1.0, min_threshold=1.0)
    trainer = _trainer(model, tokenizer, source, target, tmp_path, MCCLoss(), self_training=strict)
    loss = trainer.compute_loss(trainer.model, dict(batch))
    without = torch.nn.functional.cross_entropy(logits[:4], batch["labels"]) + 0.5 * MCCLoss()(
        logits, batch["domain_labels"]
    )
    torch.testing.assert_close(loss.detach(), without)
    assert trainer.pseudo_label_summary()["target_pseudo_labelled_rows"] == 0


def test_self_training_alone_trains_on_pairs_starts_late_and_is_logged(tiny_bert, text_domains, tmp_path):
    tokenizer, source, target = text_domains
    torch.manual_seed(0)
    model = create_classification_model(tiny_bert, ["negative", "neutral", "positive"])
    thresholds = ClassThresholds(3, len(target["train"]), threshold=0.2, min_threshold=0.0)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        use_cpu=True,
        max_steps=4,
        learning_rate=1e-2,
    )
    trainer = DomainAdaptationTrainer(
        model=model,
        args=args,
        train_dataset=DomainPairDataset(source["train"], target["train"]),
        data_collator=create_collator(tokenizer, "text"),
        self_training=thresholds,
        self_training_start=0.5,
    )
    assert trainer.alignment_loss is None and isinstance(trainer.model, DomainAdaptationModel)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "self_training_loss" in entry]
    assert len(logs) == 4 and all(entry["alignment_loss"] == 0.0 for entry in logs)
    assert [entry["self_training_loss"] == 0.0 for entry in logs] == [True, True, False, False]  # from step 2 of 4
    assert all(entry["pseudo_label_rate"] > 0 for entry in logs)
    assert trainer.pseudo_label_summary()["target_pseudo_labelled_rows"] > 0
    with pytest.raises(ValueError, match="self_training tracks 5 target rows but the target split has 12"):
        DomainAdaptationTrainer(
            model=model,
            args=args,
            train_dataset=DomainPairDataset(source["train"], target["train"]),
            self_training=ClassThresholds(3, 5),
        )


def test_trainer_requires_pairs_with_an_alignment_loss(tiny_bert, text_domains, tmp_path):
    tokenizer, source, _ = text_domains
    model = create_classification_model(tiny_bert, ["negative", "neutral", "positive"])
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    with pytest.raises(ValueError, match="needs \\(source, target\\) training pairs"):
        DomainAdaptationTrainer(model=model, args=args, train_dataset=source["train"], alignment_loss=MMDLoss())


# --------------------------------------------------------------------------------------------------
# The discriminator under DDP: 2 gloo processes, each with its own rows

# A classifier with a `classifier` head, defined once for the workers and for the single-process reference.
_CLASSIFIER = """
class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.classifier = nn.Linear(5, 6), nn.Linear(6, 3)

    def forward(self, x):
        return SimpleNamespace(logits=self.classifier(torch.tanh(self.body(x))))
"""

_DDP_WORKER = r"""
import gc, os, sys
from types import SimpleNamespace
import torch, torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from hf_transfer.adaptation import DANNLoss, DomainAdaptationModel

rank, world_size, init_file, out_dir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)

CLASSIFIER

torch.manual_seed(rank)  # different initial weights per rank: DDP must start them all from rank 0's
model = DistributedDataParallel(DomainAdaptationModel(Classifier(), DANNLoss(6, hidden_size=4, dropout=0.0)))
data = torch.load(os.path.join(out_dir, "data.pt"))
x, domains, labels = data["x"][rank], data["domains"], data["labels"][rank]
out = model(x=x, domain_labels=domains)
loss = nn.functional.cross_entropy(out.logits[domains == 0], labels) + out.alignment_loss
loss.backward()
inner = model.module
torch.save({"state": {k: v.clone() for k, v in inner.state_dict().items()},
            "grads": {n: p.grad.clone() for n, p in inner.named_parameters()}}, os.path.join(out_dir, f"rank{rank}.pt"))
del model, inner
gc.collect()
dist.barrier()
dist.destroy_process_group()
sys.stdout.flush()
os._exit(0)
"""


def test_ddp_syncs_the_discriminator_as_part_of_the_model(tmp_path):
    """The discriminator's weights start equal on every process and its gradients are DDP's average."""
    from types import SimpleNamespace

    from torch import nn

    from hf_transfer.adaptation import DomainAdaptationModel

    world_size = 2
    torch.manual_seed(0)
    data = {
        "x": torch.randn(world_size, 8, 5),
        "domains": torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]),
        "labels": torch.randint(0, 3, (world_size, 4)),
    }
    torch.save(data, tmp_path / "data.pt")
    ranks = run_gloo_workers(_DDP_WORKER.replace("CLASSIFIER", _CLASSIFIER), world_size, tmp_path, timeout=180)
    for name, value in ranks[0]["state"].items():
        torch.testing.assert_close(ranks[1]["state"][name], value, msg=name)
    for name, grad in ranks[0]["grads"].items():
        torch.testing.assert_close(ranks[1]["grads"][name], grad, msg=name)
    assert any(name.startswith("alignment_loss.discriminator") for name in ranks[0]["grads"])

    # Reference: rank 0's weights in one process, the mean of each rank's own gradient.
    namespace = {"nn": nn, "torch": torch, "SimpleNamespace": SimpleNamespace}
    exec(_CLASSIFIER, namespace)
    Classifier = namespace["Classifier"]
    reference = DomainAdaptationModel(Classifier(), DANNLoss(6, hidden_size=4, dropout=0.0))
    reference.load_state_dict(ranks[0]["state"])
    expected = {n: torch.zeros_like(p) for n, p in reference.named_parameters()}
    for rank in range(world_size):
        reference.zero_grad()
        out = reference(x=data["x"][rank], domain_labels=data["domains"])
        loss = nn.functional.cross_entropy(out.logits[:4], data["labels"][rank]) + out.alignment_loss
        loss.backward()
        for n, p in reference.named_parameters():
            expected[n] += p.grad / world_size
    for name, grad in expected.items():
        torch.testing.assert_close(ranks[0]["grads"][name], grad, atol=1e-6, rtol=1e-5, msg=name)
