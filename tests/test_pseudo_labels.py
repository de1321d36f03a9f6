"""Per-class pseudo-label thresholds (FlexMatch) against cases computed by hand."""

import pytest
import torch

from hf_transfer.pseudo_labels import ClassThresholds


def test_single_label_thresholds_follow_each_class_learning_effect():
    probabilities = torch.tensor([[0.95, 0.05], [0.97, 0.03], [0.2, 0.8], [0.6, 0.4]])
    thresholds = ClassThresholds(num_classes=2, num_rows=4, threshold=0.9, min_threshold=0.5)
    selected = thresholds.select(probabilities)
    # Class 0 is confidently predicted for 2 rows, class 1 for none; 2 rows are unconfident: beta = [1, 0].
    assert torch.allclose(selected.thresholds, torch.tensor([0.9, 0.5]))
    assert selected.mask.tolist() == [True, True, True, False]
    assert selected.targets.tolist() == [0, 0, 1, 0]
    assert selected.num_rows == 3


def test_fixed_threshold_is_fixmatch():
    probabilities = torch.tensor([[0.95, 0.05], [0.97, 0.03], [0.2, 0.8], [0.6, 0.4]])
    selected = ClassThresholds(2, 4, threshold=0.9, adaptive=False).select(probabilities)
    assert selected.thresholds.tolist() == pytest.approx([0.9, 0.9])
    assert selected.mask.tolist() == [True, True, False, False]


def test_warmup_measures_against_unconfident_rows():
    probabilities = torch.tensor([[0.95, 0.05], [0.6, 0.4], [0.55, 0.45], [0.3, 0.7]])
    warm = ClassThresholds(2, 4, threshold=0.9, min_threshold=0.1)
    cold = ClassThresholds(2, 4, threshold=0.9, min_threshold=0.1, warmup=False)
    # One confident row of class 0, three unconfident: beta0 = 1/3 with warm-up, 1 without.
    assert warm.select(probabilities).thresholds[0].item() == pytest.approx(0.9 * (1 / 3) / (2 - 1 / 3))
    assert cold.select(probabilities).thresholds[0].item() == pytest.approx(0.9)
    assert warm.thresholds()[1].item() == pytest.approx(0.1)  # no confident row of class 1: the floor


def test_batches_update_only_their_rows():
    thresholds = ClassThresholds(num_classes=2, num_rows=4, threshold=0.9, min_threshold=0.0, warmup=False)
    thresholds.update(torch.tensor([[0.99, 0.01], [0.98, 0.02]]), rows=torch.tensor([0, 1]))
    assert thresholds.learning_effect().tolist() == [1.0, 0.0]
    thresholds.update(torch.tensor([[0.01, 0.99], [0.6, 0.4]]), rows=torch.tensor([3, 1]))
    # Row 1 is no longer confident; row 3 is class 1: one confident row each.
    assert thresholds.learning_effect().tolist() == [1.0, 1.0]


def test_multi_label_keeps_each_label_on_its_own():
    probabilities = torch.tensor([[0.95, 0.55], [0.02, 0.7], [0.6, 0.99]])
    thresholds = ClassThresholds(num_classes=2, num_rows=3, threshold=0.9, multi_label=True, min_threshold=0.5)
    selected = thresholds.select(probabilities)
    # Label 0 is confident (either way) on 2 rows, label 1 on 1; every row has a confident label: beta = [1, 0.5].
    assert torch.allclose(selected.thresholds, torch.tensor([0.9, 0.5]))
    assert selected.mask.tolist() == [[True, True], [True, True], [False, True]]
    assert selected.targets.tolist() == [[1.0, 1.0], [0.0, 1.0], [1.0, 1.0]]
    cut = torch.tensor([0.5, 0.8])
    assert thresholds.select(probabilities, decision_thresholds=cut).targets[:, 1].tolist() == [0.0, 0.0, 1.0]
    assert selected.rows.tolist() == [True, True, True]


def test_bad_thresholds_are_refused():
    with pytest.raises(ValueError, match="threshold"):
        ClassThresholds(2, 3, threshold=1.5)
    with pytest.raises(ValueError, match="min_threshold"):
        ClassThresholds(2, 3, threshold=0.8, min_threshold=0.9)


def test_distribution_alignment_moves_mass_off_the_over_predicted_class():
    # Pool mean of the predictions: [0.7, 0.3]; uniform prior: scale class 0 by 0.5/0.7, class 1 by 0.5/0.3.
    probabilities = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    thresholds = ClassThresholds(2, 3, threshold=0.8, adaptive=False, distribution_alignment=True)
    selected = thresholds.select(probabilities)
    assert thresholds.pool_mean().tolist() == pytest.approx([0.7, 0.3])
    # Row 0: [0.9/0.7, 0.1/0.3] = [1.2857, 0.3333] -> 0.794 for class 0; rows 1-2: [0.857, 1.333] -> 0.609 for class 1.
    aligned_0 = (0.9 / 0.7) / (0.9 / 0.7 + 0.1 / 0.3)
    assert thresholds.align(probabilities)[0, 0].item() == pytest.approx(aligned_0)
    assert selected.targets.tolist() == [0, 1, 1]  # rows 1-2 flip to the under-predicted class
    assert selected.mask.tolist() == [False, False, False]  # 0.794 and 0.609 stay below 0.8
    skewed = ClassThresholds(2, 3, threshold=0.8, adaptive=False, distribution_alignment=True, class_prior=[3, 1])
    # Prior [0.75, 0.25] against mean [0.7, 0.3]: row 0 -> [0.9*0.75/0.7, 0.1*0.25/0.3], normalised: 0.920.
    assert skewed.select(probabilities).mask.tolist() == [True, False, False]


def test_distribution_alignment_reads_the_rows_seen_so_far():
    thresholds = ClassThresholds(2, 4, threshold=0.9, distribution_alignment=True)
    assert thresholds.pool_mean().tolist() == pytest.approx([0.5, 0.5])  # nothing seen: the prior
    thresholds.update(torch.tensor([[0.8, 0.2], [0.6, 0.4]]), rows=torch.tensor([2, 0]))
    assert thresholds.pool_mean().tolist() == pytest.approx([0.7, 0.3])
    thresholds.update(torch.tensor([[0.2, 0.8]]), rows=torch.tensor([2]))  # row 2 revisited: its latest counts
    assert thresholds.pool_mean().tolist() == pytest.approx([0.4, 0.6])


def test_class_quota_caps_each_class_at_its_share_of_the_pool():
    # 6 rows, quota 0.5, uniform prior over 3 classes: at most ceil(0.5 * 6 / 3) = 1 row per class.
    probabilities = torch.tensor(
        [[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.1, 0.85, 0.05], [0.1, 0.1, 0.8], [0.2, 0.1, 0.7]]
    )
    thresholds = ClassThresholds(3, 6, threshold=0.5, adaptive=False, class_quota=0.5)
    selected = thresholds.select(probabilities)
    # Class 0 predicted for 3 rows: its threshold rises to its most confident row's 0.9; class 1 has 1 row (quota
    # not full: 0.5 stays); class 2 has 2 rows: 0.8.
    assert thresholds.quota_thresholds().tolist() == pytest.approx([0.9, 0.0, 0.8])
    assert selected.thresholds.tolist() == pytest.approx([0.9, 0.5, 0.8])
    assert selected.mask.tolist() == [True, False, False, True, True, False]
    larger = ClassThresholds(3, 6, threshold=0.5, adaptive=False, class_quota=1.0, class_prior=[2, 1, 1])
    # Quotas ceil([3, 1.5, 1.5]) = [3, 2, 2]: no class is over its quota.
    assert larger.select(probabilities).mask.tolist() == [True, True, True, True, True, True]


def test_class_balancing_options_are_checked():
    with pytest.raises(ValueError, match="multi-label"):
        ClassThresholds(2, 3, multi_label=True, distribution_alignment=True)
    with pytest.raises(ValueError, match="class_quota"):
        ClassThresholds(2, 3, class_quota=0.0)
    with pytest.raises(ValueError, match="class_prior"):
        ClassThresholds(2, 3, class_prior=[1.0, 0.0])
