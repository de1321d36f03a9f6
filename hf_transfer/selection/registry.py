"""The selection strategies by name (`--strategy`): one registry, so the command, the docs and the tests list the
same ones. Entries name their function lazily: the argument dataclass checks names without importing scikit-learn."""

from __future__ import annotations

from dataclasses import dataclass

from .._registry import LazyReference, Registry

__all__ = ["SelectionStrategy", "SELECTION_STRATEGIES", "AUTO_STRATEGY", "resolve_strategy"]

AUTO_STRATEGY = "auto"


@dataclass(frozen=True)
class SelectionStrategy:
    """One way to choose the rows to label next.

    Args:
        name: its `--strategy` value.
        description: one line for `--help` and the docs.
        select: `hf_transfer.selection.strategies` function `(SelectionProblem) -> list[Pick]`; None for `auto`,
            which stands for another entry (`resolve_strategy`).
        needs_probe: it reads the probe fitted on the labelled rows (uncertainty), so labelled rows are required.
        reference: the paper it follows, for the docs.
    """

    name: str
    description: str
    select: LazyReference | None
    needs_probe: bool = False
    reference: str = ""


SELECTION_STRATEGIES: Registry[SelectionStrategy] = Registry("selection strategy", "--strategy")
for _entry in (
    SelectionStrategy(
        AUTO_STRATEGY,
        "typical without labelled rows (cold start); with them badge, or kcenter for a regression target",
        None,
    ),
    SelectionStrategy(
        "typical",
        "k-means into (labelled + K) clusters, the most typical row of each least-covered cluster (cold start)",
        LazyReference("hf_transfer.selection.strategies:select_typical"),
        reference="Hacohen et al. 2022, Active Learning on a Budget (TypiClust), https://arxiv.org/abs/2202.02794",
    ),
    SelectionStrategy(
        "kcenter",
        "greedy k-center (coreset): each pick the row farthest from every labelled or picked row",
        LazyReference("hf_transfer.selection.strategies:select_kcenter"),
        reference="Sener & Savarese 2018, Active Learning for CNNs: A Core-Set Approach, https://arxiv.org/abs/1708.00489",
    ),
    SelectionStrategy(
        "margin",
        "the rows the probe is least sure of: smallest gap between its two top classes (multi-label: a label's "
        "probability nearest its decision threshold)",
        LazyReference("hf_transfer.selection.strategies:select_margin"),
        needs_probe=True,
        reference="Scheffer et al. 2001, Active Hidden Markov Models for Information Extraction (margin sampling)",
    ),
    SelectionStrategy(
        "entropy",
        "the rows whose predicted distribution has the highest entropy (multi-label: mean binary entropy)",
        LazyReference("hf_transfer.selection.strategies:select_entropy"),
        needs_probe=True,
        reference="Settles 2009, Active Learning Literature Survey (uncertainty sampling)",
    ),
    SelectionStrategy(
        "badge",
        "uncertainty and diversity at once: k-means++ seeding on the probe's gradient embeddings",
        LazyReference("hf_transfer.selection.strategies:select_badge"),
        needs_probe=True,
        reference="Ash et al. 2020, Deep Batch Active Learning by Diverse, Uncertain Gradient Lower Bounds (BADGE), "
        "https://arxiv.org/abs/1906.03671",
    ),
    SelectionStrategy(
        "random",
        "a seeded random draw: the baseline every other strategy should beat",
        LazyReference("hf_transfer.selection.strategies:select_random"),
    ),
):
    SELECTION_STRATEGIES.register(_entry)


def resolve_strategy(name: str, labelled: bool, task: str | None = None) -> SelectionStrategy:
    """The entry `--strategy name` runs: `auto` is `typical` without labelled rows (a cold start, where typical
    points beat uncertainty: Hacohen et al. 2022), `badge` with labelled rows of a task whose probe gives class
    probabilities, else `kcenter`."""
    if name != AUTO_STRATEGY:
        return SELECTION_STRATEGIES.get(name)
    if not labelled:
        return SELECTION_STRATEGIES.get("typical")
    from .uncertainty import PROBE_READINGS

    return SELECTION_STRATEGIES.get("badge" if task in PROBE_READINGS else "kcenter")
