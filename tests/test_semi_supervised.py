"""Learning from unlabelled rows: the probe's self-training loop on features with a hand-checkable outcome, FixMatch's
views and loss, and finetune with an unlabelled pool on tiny models of several families, single- and multi-label, the
saved model reloaded in a fresh process to its reported scores; bad input stops with one line."""

import numpy as np
import pytest
import torch

from hf_transfer.probing.logistic import fit_linear_probe
from hf_transfer.probing.one_vs_rest import fit_one_vs_rest_probe
from hf_transfer.pseudo_labels import ClassThresholds
from hf_transfer.semi_supervised import SEMI_SUPERVISED_METHODS, self_train_probe
from hf_transfer.semi_supervised.self_training import align_distribution, probe_probabilities

# ------------------------------------------------------------------------------------------------ the probe loop


def _clusters(rows_per_class: int, seed: int = 0, dims: int = 8, spread: float = 1.0):
    """Two Gaussian clusters at -2 and +2 on the first axis (noise on every axis)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, spread, size=(2 * rows_per_class, dims))
    y = np.repeat([0, 1], rows_per_class)
    x[:, 0] += np.where(y == 1, 2.0, -2.0)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


def _fit(train, l2_grid=(1.0,)):
    return fit_linear_probe(*train, *train, 2, l2_grid, 200)


def test_two_labelled_rows_pseudo_label_two_clusters_and_the_refit_probe_is_better():
    pool_x, pool_y = _clusters(100, seed=1)
    test_x, test_y = _clusters(500, seed=2)
    # One labelled row per class, on the noisy axes mostly: the labelled-only probe leans on noise.
    labelled = (torch.tensor([[-2.0, 3.0, -3.0, 0, 0, 0, 0, 0], [2.0, -3.0, 3.0, 0, 0, 0, 0, 0]]), torch.tensor([0, 1]))
    probe = _fit(labelled)
    before = float((probe.predict(test_x) == test_y).float().mean())
    thresholds = ClassThresholds(2, len(pool_x), threshold=0.95, min_threshold=0.6)
    refit = lambda split: _fit(split, [probe.l2])  # noqa: E731 - the L2 chosen on the labelled rows
    trained, report = self_train_probe(probe, refit, labelled, pool_x, thresholds, rounds=3, hidden_labels=pool_y)
    after = float((trained.predict(test_x) == test_y).float().mean())
    assert report.unlabelled_rows == 200 and len(report.pseudo_labelled) == 3 and report.trained_on > 100
    assert min(report.pseudo_label_accuracy) > 0.95  # the clusters are pseudo-labelled correctly...
    assert after > before + 0.05 and after > 0.88  # ...and the refit probe is better than the labelled-only one
    assert trained.l2 == probe.l2
    metrics = report.metrics()
    assert metrics["semi_supervised_unlabelled_samples"] == 200
    assert metrics["semi_supervised_pseudo_labelled_samples"] == report.trained_on


def test_without_distribution_alignment_one_class_takes_the_pool():
    pool_x, pool_y = _clusters(100, seed=1)
    labelled = (torch.tensor([[-2.0, 3.0, -3.0, 0, 0, 0, 0, 0], [2.0, -3.0, 3.0, 0, 0, 0, 0, 0]]), torch.tensor([0, 1]))
    probe = _fit(labelled)
    refit = lambda split: _fit(split, [probe.l2])  # noqa: E731
    runs = {}
    for align in (True, False):
        thresholds = ClassThresholds(2, len(pool_x), threshold=0.95, min_threshold=0.6)
        runs[align] = self_train_probe(probe, refit, labelled, pool_x, thresholds, 6, hidden_labels=pool_y, align=align)
    assert runs[False][1].pseudo_label_accuracy[-1] < 0.6  # every row pseudo-labelled as one class
    assert min(runs[True][1].pseudo_label_accuracy) > 0.95


def test_distribution_alignment_by_hand():
    probabilities = torch.tensor([[0.9, 0.1], [0.7, 0.3]])
    aligned = align_distribution(probabilities, torch.tensor([0.5, 0.5]))
    # mean [0.8, 0.2]: rows scaled by [0.625, 2.5] -> [0.5625, 0.25] and [0.4375, 0.75], then normalised.
    expected = [0.5625 / 0.8125, 0.25 / 0.8125, 0.4375 / 1.1875, 0.75 / 1.1875]
    assert aligned.flatten().tolist() == pytest.approx(expected)


def test_nothing_confident_keeps_the_labelled_probe_and_says_so():
    labelled = _clusters(2)
    probe = _fit(labelled, [1e4])  # so strong a penalty that every probability is near 1/2
    pool = _clusters(20, seed=3)[0]
    calls = []
    kept, report = self_train_probe(
        probe, lambda split: calls.append(split), labelled, pool, ClassThresholds(2, 40, 0.95, min_threshold=0.9), 3
    )
    assert kept is probe and calls == [] and report.pseudo_labelled == [0] and report.trained_on == 0


def test_the_loop_stops_once_the_pseudo_labels_repeat():
    labelled, pool = _clusters(5), _clusters(50, seed=4)[0]
    probe = _fit(labelled)
    fits = []

    def refit(split):
        fits.append(len(split[0]))
        return probe  # the same probe: the same pseudo-labels next round

    _, report = self_train_probe(probe, refit, labelled, pool, ClassThresholds(2, 100, 0.95, min_threshold=0.5), 10)
    assert len(fits) == 1 and len(report.pseudo_labelled) == 2


def test_multi_label_rows_join_when_every_label_is_confident():
    x = torch.tensor([[3.0, -3.0], [-3.0, 3.0], [3.0, 3.0], [-3.0, -3.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    probe = fit_one_vs_rest_probe(x, y, x, y, [0.01], 200)
    pool = torch.tensor([[3.0, -3.0], [3.0, 0.0], [-3.0, 3.0]])  # the middle row's second label is a coin toss
    probabilities = probe_probabilities(probe, pool, multi_label=True)
    assert probabilities[1, 1] == pytest.approx(0.5, abs=0.25)
    seen = []

    def refit(split):
        seen.append(split)
        return probe

    thresholds = ClassThresholds(2, 3, threshold=0.9, multi_label=True, min_threshold=0.8)
    self_train_probe(probe, refit, (x, y), pool, thresholds, 1)
    features, labels = seen[0]
    assert len(features) == 4 + 2 and labels[4:].tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_every_strategy_names_a_registered_method():
    from hf_transfer.finetuning.strategies import STRATEGIES

    for name in STRATEGIES:
        strategy = STRATEGIES.get(name)
        method = SEMI_SUPERVISED_METHODS.get(strategy.semi_supervised)
        assert method.trains_probe == (strategy.probes and not strategy.finetunes), strategy.name
        assert method.implementation.resolve() is not None


# ------------------------------------------------------------------------------------------------ FixMatch's pieces


def test_the_consistency_loss_counts_kept_rows_over_the_whole_batch():
    from hf_transfer.pseudo_labels import PseudoLabels
    from hf_transfer.semi_supervised.loss import ConsistencyLoss

    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    pseudo = PseudoLabels(torch.tensor([0, 0, 1]), torch.tensor([True, True, False]), torch.tensor([0.9, 0.9]))
    expected = (torch.log1p(torch.exp(torch.tensor(-2.0))) + torch.log1p(torch.exp(torch.tensor(2.0)))) / 3
    assert float(ConsistencyLoss()(logits, pseudo)) == pytest.approx(float(expected))
    nothing = PseudoLabels(torch.tensor([0, 0, 1]), torch.zeros(3, dtype=torch.bool), torch.tensor([0.9, 0.9]))
    assert float(ConsistencyLoss()(logits, nothing)) == 0.0
    # Multi-label: only the confident (row, label) pairs count.
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    mask = torch.tensor([[True, False], [False, False], [False, False]])
    loss = ConsistencyLoss(multi_label=True)(logits, PseudoLabels(targets, mask, torch.tensor([0.9, 0.9])))
    assert float(loss) == pytest.approx(float(torch.log1p(torch.exp(torch.tensor(-2.0)))) / 6)


class _Tokenizer:
    def __init__(self, mask_token_id):
        self.mask_token_id = mask_token_id
        self.all_special_ids = [0, 1, 2] + ([mask_token_id] if mask_token_id is not None else [])


def test_token_masking_spares_special_tokens_and_padding():
    from hf_transfer.semi_supervised import TokenMasking

    ids = torch.tensor([[1] + list(range(10, 60)) + [2, 0, 0]])  # [CLS] 50 words [SEP] [PAD] [PAD]
    attention = (ids != 0).long()
    masked = TokenMasking(_Tokenizer(3), 0.5, torch.Generator().manual_seed(0))(
        {"input_ids": ids, "attention_mask": attention}
    )
    changed = masked["input_ids"] != ids
    assert (masked["input_ids"][changed] == 3).all() and 10 < int(changed.sum()) < 40
    assert not changed[0, [0, 51, 52, 53]].any()  # [CLS], [SEP] and the padding stay
    # Without a mask token the chosen tokens leave attention instead (token dropout).
    dropped = TokenMasking(_Tokenizer(None), 0.5, torch.Generator().manual_seed(0))(
        {"input_ids": ids, "attention_mask": attention}
    )
    assert torch.equal(dropped["input_ids"], ids)
    assert torch.equal(dropped["attention_mask"] == 0, changed | (attention == 0))
