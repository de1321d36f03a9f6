"""hf_transfer.transferability: each score against hand-computed cases and the properties its paper states."""

import math

import pytest
import torch

from hf_transfer.transferability import TRANSFERABILITY_SCORES, h_score, leep, logme, nce
from hf_transfer.transferability.logme import logme_evidence


def _gaussian_evidence(features, y, alpha, beta):
    """log N(y; 0, F F^T / alpha + I / beta) per row: the marginal likelihood LogME maximises, computed directly."""
    f = features.double()
    covariance = f @ f.T / alpha + torch.eye(len(y), dtype=torch.float64) / beta
    normal = torch.distributions.MultivariateNormal(torch.zeros(len(y), dtype=torch.float64), covariance)
    return float(normal.log_prob(y.double())) / len(y)


@pytest.mark.parametrize("n, dim", [(40, 5), (6, 12)])  # more rows than dimensions, and fewer
def test_logme_is_the_maximised_gaussian_evidence(n, dim):
    g = torch.Generator().manual_seed(0)
    features = torch.randn(n, dim, generator=g, dtype=torch.float64)
    y = features @ torch.randn(dim, generator=g, dtype=torch.float64) + 0.3 * torch.randn(n, generator=g)
    evidence, alpha, beta = logme_evidence(features, y)
    assert evidence == pytest.approx(_gaussian_evidence(features, y, alpha, beta), rel=1e-9)
    for a, b in ((alpha * 1.2, beta), (alpha / 1.2, beta), (alpha, beta * 1.2), (alpha, beta / 1.2)):
        assert _gaussian_evidence(features, y, a, b) < evidence  # the fixed point is a maximum


def test_logme_averages_one_hot_columns_and_prefers_features_that_predict_the_labels():
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(60) % 3
    informative = torch.nn.functional.one_hot(labels, 3).double() * 3 + torch.randn(60, 3, generator=g)
    noise = torch.randn(60, 3, generator=g, dtype=torch.float64)
    columns = torch.nn.functional.one_hot(labels, 3).double()
    expected = sum(logme_evidence(informative, columns[:, j])[0] for j in range(3)) / 3
    assert logme(informative, labels) == pytest.approx(expected)
    assert logme(informative, labels) > logme(noise, labels)
    # Nor does the scale of the features (the evidence is maximised over alpha), down to a random network's 1e-20.
    assert logme(informative * 1e-20, labels) == pytest.approx(logme(informative, labels), rel=1e-4)
    # Class numbering does not matter.
    assert logme(informative, (labels + 1) % 3) == pytest.approx(logme(informative, labels))
    # Regression: the target column as it is.
    target = informative[:, 0] * 2.0
    assert logme(informative, target, regression=True) == pytest.approx(logme_evidence(informative, target)[0])


def test_h_score_by_hand_and_its_invariances():
    # 1-D: var(f) = 1.25, the class means 0.5 and 2.5 have variance 1.0 -> 0.8.
    one_d = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    assert h_score(one_d, torch.tensor([0, 0, 1, 1]), shrinkage=0.0) == pytest.approx(0.8)
    assert h_score(one_d, torch.tensor([0, 0, 1, 1])) == pytest.approx(0.8)  # one dimension: nothing to shrink
    g = torch.Generator().manual_seed(2)
    labels = torch.arange(30) % 3
    features = torch.randn(30, 4, generator=g, dtype=torch.float64) + labels[:, None].double()
    mixing = torch.randn(4, 4, generator=g, dtype=torch.float64) + 4 * torch.eye(4, dtype=torch.float64)
    plain = h_score(features, labels, shrinkage=0.0)
    assert h_score(features @ mixing + 7.0, labels, shrinkage=0.0) == pytest.approx(plain, rel=1e-8)
    assert 0.0 <= plain <= 2.0  # min(D, C - 1)
    assert h_score(features * 1e-20, labels) == pytest.approx(h_score(features, labels), rel=1e-6)
    # Features that are the class means reach the bound C - 1; with an extra constant dimension too.
    means = torch.nn.functional.one_hot(labels, 3).double()
    assert h_score(torch.cat([means, torch.ones(30, 1)], 1), labels, shrinkage=0.0) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="shrinkage"):
        h_score(features, labels, shrinkage=1.5)


def test_shrunk_h_score_uses_the_ledoit_wolf_weight_and_survives_more_dimensions_than_rows():
    from sklearn.covariance import ledoit_wolf_shrinkage as sklearn_shrinkage

    from hf_transfer.transferability.hscore import ledoit_wolf_shrinkage

    g = torch.Generator().manual_seed(4)
    x = torch.randn(50, 8, generator=g, dtype=torch.float64) * torch.linspace(0.5, 3.0, 8, dtype=torch.float64)
    x = x - x.mean(0)
    assert ledoit_wolf_shrinkage(x) == pytest.approx(float(sklearn_shrinkage(x.numpy(), assume_centered=True)))
    # 40 rows, 100 dimensions: the plain score is C - 1 for noise and signal alike; the shrunk one tells them apart.
    labels = torch.arange(40) % 2
    noise = torch.randn(40, 100, generator=g, dtype=torch.float64)
    signal = noise.clone()
    signal[:, :5] += 2.0 * labels[:, None].double()
    assert h_score(noise, labels, shrinkage=0.0) == pytest.approx(1.0)
    assert h_score(signal, labels, shrinkage=0.0) == pytest.approx(1.0)
    assert h_score(noise, labels) < 0.2 < 0.4 < h_score(signal, labels)


def test_nce_by_hand():
    # Joint: (y0, z0) 2/4, (y1, z0) 1/4, (y1, z1) 1/4; P(y0|z0) = 2/3, P(y1|z0) = 1/3, P(y1|z1) = 1.
    expected = 0.5 * math.log(2 / 3) + 0.25 * math.log(1 / 3) + 0.25 * math.log(1.0)
    assert nce(torch.tensor([0, 0, 0, 1]), torch.tensor([0, 0, 1, 1])) == pytest.approx(expected)
    # 0 when the source label determines the target label, whatever the numbering.
    assert nce(torch.tensor([5, 3, 3, 9, 1]), torch.tensor([0, 1, 1, 2, 2])) == pytest.approx(0.0)
    # The entropy of Y when Z says nothing.
    assert nce(torch.zeros(4, dtype=torch.long), torch.tensor([0, 1, 0, 1])) == pytest.approx(-math.log(2))


def test_leep_by_hand_and_its_bound_by_nce():
    theta = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    # P(y|z0) = [1, 0], P(y|z1) = [1/3, 2/3]: expected predictions 1, 2/3, 2/3.
    assert leep(theta, torch.tensor([0, 0, 1])) == pytest.approx(2 * math.log(2 / 3) / 3)
    g = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 3, (50,), generator=g)
    logits = torch.randn(50, 6, generator=g) + 2 * torch.nn.functional.one_hot(labels * 2, 6)
    probabilities = logits.softmax(1)
    hard = probabilities.argmax(1)
    # Nguyen et al., Theorem 1: LEEP >= NCE + mean log theta(x_i)_{z_i}, with z_i the source head's argmax.
    bound = nce(hard, labels) + float(torch.log(probabilities.gather(1, hard[:, None])).mean())
    assert leep(probabilities, labels) >= bound - 1e-12
    assert leep(probabilities, labels) <= 0.0
    # A deterministic source head makes LEEP the NCE of its labels.
    one_hot = torch.nn.functional.one_hot(hard, 6).double()
    assert leep(one_hot, labels) == pytest.approx(nce(hard, labels))


def test_registry_names_every_score_and_what_it_needs():
    assert set(TRANSFERABILITY_SCORES) == {"logme", "h_score", "leep", "nce"}
    assert {n for n, s in TRANSFERABILITY_SCORES.items() if s.needs_source_head} == {"leep", "nce"}
    features, labels = torch.randn(20, 3), torch.arange(20) % 2
    probabilities = torch.rand(20, 4).softmax(1)
    for score in TRANSFERABILITY_SCORES.values():
        assert math.isfinite(score.compute(features, probabilities, labels))


def _class_signal(n, dim, noise, seed):
    """Features that carry the labels: one random direction per class, plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    means = torch.nn.functional.one_hot(labels, 3).double() @ torch.randn(3, dim, generator=g, dtype=torch.float64)
    return means + noise * torch.randn(n, dim, generator=g, dtype=torch.float64), labels


@pytest.mark.parametrize("n, dim", [(40, 384), (10, 1000)])
def test_logme_is_finite_and_still_the_maximum_with_far_more_dimensions_than_rows(n, dim):
    """D >> N (few labelled rows, a 384-d model or every layer): F fits any y exactly, the best noise precision grows
    without bound, and MacKay's updates divided by zero. The evidence itself is finite and still maximised."""
    for noise in (0.1, 1.0):
        features, labels = _class_signal(n, dim, noise, seed=n)
        score = logme(features, labels)
        assert math.isfinite(score)
        assert score > logme(torch.randn(n, dim, generator=torch.Generator().manual_seed(1)), labels)
        column = torch.nn.functional.one_hot(labels, 3).double()[:, 0]
        evidence, alpha, beta = logme_evidence(features, column)
        assert math.isfinite(evidence) and alpha > 0 and beta > 0
        # The Gaussian evidence at (alpha, beta), and nowhere higher (beta may sit at the noise-free limit).
        assert evidence == pytest.approx(_gaussian_evidence(features, column, alpha, beta), rel=1e-6)
        for a, b in ((alpha * 1.5, beta), (alpha / 1.5, beta), (alpha, beta * 1.5), (alpha, beta / 1.5), (1.0, 1.0)):
            assert _gaussian_evidence(features, column, a, b) < evidence + 1e-9


def test_logme_with_zero_singular_values_and_constant_features():
    labels = torch.arange(12) % 2
    features, _ = _class_signal(6, 50, 0.5, seed=3)
    duplicated = torch.cat([features, features])  # rank 6 for 12 rows: six zero singular values
    assert math.isfinite(logme(duplicated, labels))
    assert math.isfinite(logme(torch.zeros(12, 8), labels))  # no feature at all: the noise-only model
    assert math.isfinite(logme(torch.ones(12, 8), labels))  # one direction, shared by every row
