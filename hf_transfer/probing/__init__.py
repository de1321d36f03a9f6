"""Linear probing: frozen features extracted once and cached, then a multinomial logistic regression.

The features are what the pretrained weights compute: the input of the first layer of the classification
model that the checkpoint lacked (captured by a forward pre-hook). For most heads that layer is the final
`nn.Linear` and the fitted probe is copied into it. Heads with new hidden layers (RoBERTa's dense + tanh,
DistilBERT's `pre_classifier`, DeBERTa's pooler, ModernBERT's head) get those layers set to a fixed
standardising map of the features and the probe fitted on what the final Linear then sees. Either way the
result is a plain `AutoModelFor...Classification` checkpoint that computes exactly the probe: no custom
class, no remote code, no random layer.

The probe follows the CLIP / DINOv2 protocol: features are standardised, the L2 strength is swept on
a log grid and chosen by validation accuracy, each fit is a full-batch L-BFGS solve in torch warm-
started from the previous (stronger) regularisation; the standardisation is folded back into the
weights so the saved head takes raw features.

References:
    Radford et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision" (CLIP), sec. 3.2.
    Oquab et al. 2023, "DINOv2: Learning Robust Visual Features without Supervision", linear evaluation.

Where each step lives: `cache` (`FeatureCache`), `features` (extraction through a forward pre-hook), `logistic`
(the L-BFGS fit and its L2 sweep), `ridge` (the probe of a numeric target), `head_layout` (where the features are
read, new hidden head layers), `classifier` (`probe_classification_model`, all of it on a classification model).
"""

from ..constants import DEFAULT_L2_GRID
from .cache import FeatureCache
from .classifier import probe_classification_model
from .features import extract_features
from .head_layout import ProbeLayout, locate_probe_features
from .logistic import ProbeResult, fit_linear_probe, load_probe_into_classifier, standardization
from .one_vs_rest import OneVsRestProbe, fit_one_vs_rest_probe
from .ridge import RidgeProbe, fit_ridge_probe

__all__ = [
    "DEFAULT_L2_GRID",
    "ProbeResult",
    "OneVsRestProbe",
    "fit_one_vs_rest_probe",
    "RidgeProbe",
    "fit_ridge_probe",
    "FeatureCache",
    "extract_features",
    "fit_linear_probe",
    "load_probe_into_classifier",
    "locate_probe_features",
    "ProbeLayout",
    "probe_classification_model",
    "standardization",
]
