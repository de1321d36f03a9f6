"""Which rows fine-tuning holds out when the data has no validation split.

A user with 8 labelled rows per class cannot spare a tenth of them, and a tenth of them is too few rows to score or
choose anything on. The probe cross-validates on every row and refits; fine-tuning on few rows (under
`FEW_ROWS_PER_LABEL` a label) likewise trains on every row, unless something must be chosen on rows the model has not
trained on: the multi-label decision thresholds and the best checkpoint (`--load_best_model_at_end`) keep a held-out
share for good, and a search (`--hp_search`) scores its trials on one, after which the final model trains on every
row with the chosen values (what scikit-learn's `*CV` estimators do with `refit=True`). With more rows a held-out
share costs little and gives the run its validation scores, so it is kept.
"""

from dataclasses import dataclass
from typing import Optional

from datasets import DatasetDict, concatenate_datasets

from ..tasks import Task

__all__ = ["FEW_ROWS_PER_LABEL", "ValidationPlan", "merge_validation_into_train", "plan_validation"]

FEW_ROWS_PER_LABEL = 100  # below it a held-out tenth is under 10 rows a label: fine-tuning keeps them all


@dataclass(frozen=True)
class ValidationPlan:
    """What a fine-tuning run does about validation rows.

    Args:
        carve: hold a stratified share of the training rows out as a validation split.
        refit_on_all_rows: train the final model on the training rows and the held-out ones (after the search).
        source: the results' `validation_source` when the final model has no held-out scores; None when it has.
    """

    carve: bool
    refit_on_all_rows: bool
    source: Optional[str]


def plan_validation(
    *,
    has_validation: bool,
    finetunes: bool,
    task: Task,
    hp_search: int,
    load_best_model_at_end: bool,
    fraction: float,
    rows_per_label: float,
) -> ValidationPlan:
    """The plan for a run whose data has (`has_validation`) or lacks a validation split, with `rows_per_label`
    training rows per class (per target for regression)."""
    if has_validation or not finetunes:  # a given split is used as it is; the probe cross-validates
        return ValidationPlan(carve=False, refit_on_all_rows=False, source=None)
    if rows_per_label >= FEW_ROWS_PER_LABEL or task.fits_decision_on_validation or load_best_model_at_end:
        return ValidationPlan(carve=True, refit_on_all_rows=False, source=None)
    if hp_search:
        return ValidationPlan(
            carve=True,
            refit_on_all_rows=True,
            source=(
                f"none: no validation split and few rows, so the {hp_search} search trials were scored on a held-out {fraction:g} "
                "of the training rows, and the final model then trained on all of them with the chosen values (give "
                "a --validation_file for held-out scores)"
            ),
        )
    return ValidationPlan(
        carve=False,
        refit_on_all_rows=False,
        source=(
            f"none: no validation split and few rows (under {FEW_ROWS_PER_LABEL} a label), so fine-tuning trained on every labelled row (give a --validation_file, or "
            "--validation_split_percentage, for held-out scores)"
        ),
    )


def merge_validation_into_train(splits: DatasetDict) -> DatasetDict:
    """`splits` with the validation rows appended to train and no validation split (the order of splits kept)."""
    merged = concatenate_datasets([splits["train"], splits["validation"]])
    return DatasetDict(
        {name: merged if name == "train" else rows for name, rows in splits.items() if name != "validation"}
    )
