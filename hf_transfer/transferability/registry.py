"""The transferability scores by name: one registry, so the CLI, the ranking and the docs list the same scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .hscore import h_score
from .leep import leep
from .logme import logme
from .nce import nce

__all__ = ["TransferabilityScore", "TRANSFERABILITY_SCORES", "get_score"]


@dataclass(frozen=True)
class TransferabilityScore:
    """A score of one candidate's target data: higher means the candidate should transfer better.

    `compute(features, source_probabilities, labels)`: features `(N, D)`; source_probabilities `(N, Z)` the
    pretrained head's softmax, `None` when the candidate has no source head (then `needs_source_head` scores are
    not defined for it).
    """

    name: str
    compute: Callable[[torch.Tensor, Optional[torch.Tensor], torch.Tensor], float]
    needs_source_head: bool
    paper: str


TRANSFERABILITY_SCORES: dict[str, TransferabilityScore] = {
    score.name: score
    for score in (
        TransferabilityScore(
            "logme", lambda f, p, y: logme(f, y), False, "You et al. 2021, LogME, https://arxiv.org/abs/2102.11005"
        ),
        TransferabilityScore(
            "h_score",
            lambda f, p, y: h_score(f, y),
            False,
            "Bao et al. 2019, An Information-Theoretic Approach to Transferability (H-score), ICIP",
        ),
        TransferabilityScore(
            "leep", lambda f, p, y: leep(p, y), True, "Nguyen et al. 2020, LEEP, https://arxiv.org/abs/2002.12462"
        ),
        TransferabilityScore(
            "nce",
            lambda f, p, y: nce(p.argmax(1), y),
            True,
            "Tran et al. 2019, Transferability and Hardness (NCE), https://arxiv.org/abs/1908.08142",
        ),
    )
}


def get_score(name: str) -> TransferabilityScore:
    if name not in TRANSFERABILITY_SCORES:
        raise KeyError(f"Unknown transferability score {name!r}; choose from {', '.join(TRANSFERABILITY_SCORES)}.")
    return TRANSFERABILITY_SCORES[name]
