"""Active learning's first step: which pool rows to label next, chosen from a backbone's cached features.

`registry` names the strategies (`--strategy`), `strategies` implements them on numpy features (TypiClust's typical
points and greedy k-center for diversity, margin / entropy of a probe for uncertainty, BADGE for both, a seeded random
baseline), `uncertainty` fits the task's probe on the labelled rows and reads how sure it is of each pool row,
`pool` loads the unlabelled rows and matches them against the labelled ones, `state` keeps what earlier rounds picked
(`selection.json`, `selected.csv`) so a second call continues, and `command` is `hf-transfer select`.
"""

from .registry import AUTO_STRATEGY, SELECTION_STRATEGIES, SelectionStrategy
from .strategies import Pick, SelectionProblem

__all__ = ["AUTO_STRATEGY", "SELECTION_STRATEGIES", "Pick", "SelectionProblem", "SelectionStrategy"]
