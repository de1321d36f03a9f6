"""F1 score as an `evaluate` metric module (macro by default), shipped in the package for offline use.

The Hub is offline, so `evaluate.load("f1")` cannot fetch its module; this one computes with scikit-learn, as the
Hub's does.
"""

import datasets
import evaluate

_DESCRIPTION = "F1: harmonic mean of precision and recall, per class, then averaged."
_CITATION = ""
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted labels.
    references (`list` of `int`): ground-truth labels.
    average (`str`): `macro` (default; unweighted mean over classes present in predictions or
        references), `micro`, or `weighted` (by class support).
Returns:
    f1 (`float`): in [0, 1].
"""


class F1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, average="macro"):
        from sklearn.metrics import f1_score

        if average not in ("macro", "micro", "weighted"):
            raise ValueError(f"average={average!r} is not supported; use 'macro', 'micro' or 'weighted'.")
        if len(references) == 0:
            return {"f1": 0.0}
        # zero_division=0: a class never predicted nor present scores 0, as the hand-written version did
        return {"f1": float(f1_score(references, predictions, average=average, zero_division=0))}
