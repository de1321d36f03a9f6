"""Metrics of every task: classification through `evaluate`, from metric modules that ship inside this package.

`evaluate.load("accuracy")` needs the Hub; `evaluate.load(<path to a module>)` does not. The modules
live in `hf_transfer/metrics/<name>/<name>.py`; `classification` loads them once per process.
"""

from .classification import METRIC_NAMES, compute_classification_metrics, load_metric
from .multi_label import DecisionThresholds, choose_decision_thresholds, compute_multi_label_metrics
from .regression import REGRESSION_METRICS, compute_regression_metrics
from .task_metrics import compute_task_metrics, create_compute_metrics
from .token_classification import compute_token_classification_metrics

__all__ = [
    "METRIC_NAMES",
    "REGRESSION_METRICS",
    "load_metric",
    "compute_classification_metrics",
    "compute_regression_metrics",
    "DecisionThresholds",
    "choose_decision_thresholds",
    "compute_multi_label_metrics",
    "compute_token_classification_metrics",
    "compute_task_metrics",
    "create_compute_metrics",
]
