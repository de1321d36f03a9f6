"""Source and target domains: loading one by name, and the checks that pair them.

The derived built-in domains (`digits_m`, an MNIST-M-style shift of `digits`) live with the other built-in data
sets (`hf_transfer.data.derived_sets`, listed in `hf_transfer.registry`), so every recipe can load them.
"""

from __future__ import annotations

import logging
from typing import Optional

from datasets import DatasetDict

from ..data import DataArguments, infer_modality, load_transfer_dataset
from ..errors import DataError, HfTransferError
from ..modalities import MODALITIES
from .arguments import prefix_flags

__all__ = ["load_domain_dataset", "align_domains"]

logger = logging.getLogger(__name__)


def load_domain_dataset(
    args: DataArguments, cache_dir: Optional[str] = None, prefix: Optional[str] = None
) -> DatasetDict:
    """`load_transfer_dataset` (derived built-ins such as `digits_m` included), for one domain.

    With `prefix` (`source` / `target`), errors name that domain and its flags (`--target_train_file`).
    """
    try:
        return load_transfer_dataset(args, cache_dir=cache_dir)
    except HfTransferError as err:
        if prefix is None:
            raise
        raise type(err)(f"{prefix.capitalize()} data: {prefix_flags(str(err), prefix)}") from err


def align_domains(source: DatasetDict, target: DatasetDict) -> DatasetDict:
    """Check that the two domains can be paired and give the target the source's label ids.

    Same task, different distribution: both domains must hold the same kind of input (text or images) and
    the same classes. Classes listed in another order are re-numbered to the source's ids.

    Raises:
        DataError: the modalities or the label sets differ; the message lists the difference and the fix.
    """
    source_modality, target_modality = infer_modality(source), infer_modality(target)
    if MODALITIES.get(source_modality) is not MODALITIES.get(target_modality):
        raise DataError(
            f"The source domain is {source_modality} but the target domain is {target_modality}. Domain "
            "adaptation needs the same task on both (only the data distribution differs): pick a "
            f"{source_modality} target data set (--target_dataset_name / --target_train_file / --target_train_dir)."
        )
    source_names = list(source["train"].features["label"].names)
    target_names = list(target["train"].features["label"].names)
    if source_names == target_names:
        return target
    only_source = sorted(set(source_names) - set(target_names))
    only_target = sorted(set(target_names) - set(source_names))
    if only_source or only_target:
        raise DataError(
            f"The source and target label sets differ: only in the source {only_source[:20]}, only in the target "
            f"{only_target[:20]} (source labels: {source_names[:20]}; target labels: {target_names[:20]}). Domain "
            "adaptation needs the same classes in both domains: rename the target's labels to the source's "
            "names (or pick the right --target_label_column), or choose a matching pair of data sets."
        )
    label2id = {name: i for i, name in enumerate(source_names)}
    logger.info("Re-numbering target labels %s to the source order %s", target_names, source_names)
    aligned = target.align_labels_with_mapping(label2id, "label")
    return aligned.cast_column("label", source["train"].features["label"])
