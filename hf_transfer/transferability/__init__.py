"""Transferability scores: which candidate backbone (or layer) will transfer best, from its features of the target
data alone, before any training.

One module per score: `logme` (LogME, You et al. 2021), `leep` (LEEP, Nguyen et al. 2020), `nce` (NCE, Tran et al.
2019), `hscore` (H-score, Bao et al. 2019); `registry` names them; `candidates` reads a candidate's features (and its
source head's predictions); `ranking` scores every candidate and writes the ranked table.
"""

from .hscore import h_score
from .leep import leep
from .logme import logme
from .nce import nce
from .registry import TRANSFERABILITY_SCORES, TransferabilityScore, get_score

__all__ = ["TRANSFERABILITY_SCORES", "TransferabilityScore", "get_score", "h_score", "leep", "logme", "nce"]
