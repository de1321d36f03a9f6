"""Classification metrics through `evaluate`, from metric modules that ship inside this package.

`evaluate.load("accuracy")` needs the Hub; `evaluate.load(<path to a module>)` does not. The modules
live in `hf_transfer/metrics/<name>/<name>.py`; `classification` loads them once per process.
"""

from .classification import METRIC_NAMES, compute_classification_metrics, create_compute_metrics, load_metric

__all__ = ["METRIC_NAMES", "load_metric", "compute_classification_metrics", "create_compute_metrics"]
