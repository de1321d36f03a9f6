"""F1 score as an `evaluate` metric module (macro by default), shipped in the package for offline use."""

import datasets
import evaluate
import numpy as np

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
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, average="macro"):
        predictions = np.asarray(predictions)
        references = np.asarray(references)
        if average == "micro":
            return {"f1": float((predictions == references).mean()) if len(references) else 0.0}
        classes = np.union1d(predictions, references)
        scores, support = [], []
        for c in classes:
            tp = np.sum((predictions == c) & (references == c))
            fp = np.sum((predictions == c) & (references != c))
            fn = np.sum((predictions != c) & (references == c))
            denom = 2 * tp + fp + fn
            scores.append(2 * tp / denom if denom else 0.0)
            support.append(np.sum(references == c))
        if not scores:
            return {"f1": 0.0}
        if average == "weighted":
            weights = np.asarray(support, dtype=float)
            return {"f1": float(np.average(scores, weights=weights)) if weights.sum() else 0.0}
        if average != "macro":
            raise ValueError(f"average={average!r} is not supported; use 'macro', 'micro' or 'weighted'.")
        return {"f1": float(np.mean(scores))}
