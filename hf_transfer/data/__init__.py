"""Load any data source into one canonical `datasets.DatasetDict`.

Probing, fine-tuning and adaptation code should never care where the data came from. Whatever the
source (a built-in offline set, a Hub id, csv/tsv/json/jsonl/parquet files, or image folders),
`load_transfer_dataset` returns the same shape:

- splits `train` and `validation` always, `test` when the source has one (validation is carved out
  of train, stratified and seeded, when the source has none);
- columns `text` (string) *or* `image` (`datasets.Image`, PIL when read), and `label`, a
  `datasets.ClassLabel` with names that is identical across all splits. Every other column is dropped.

Every step is a seeded, cached `datasets` transform, so loading the same thing twice gives the same
`_fingerprint` for every split; downstream code keys its feature caches on it.

Bad input raises `hf_transfer.errors.DataError` with one message that names the problem and the fix.

Where each step lives: `arguments` (the flags and their checks), `sources` (reading each kind of source),
`builtin_sets` / `derived_sets` (the built-ins of `hf_transfer.registry`), `columns` (the canonical columns),
`labels` (one `ClassLabel`), `splits` (hold-outs and subsets), `loading` (the path through all of them).
"""

from .arguments import DataArguments, data_source_name, label_names_of
from .columns import infer_modality, infer_task, verify_images
from .constants import BUILTIN_DATASETS, DERIVED_DATASETS
from .loading import load_transfer_dataset
from .sources import read_data_files

__all__ = [
    "BUILTIN_DATASETS",
    "DERIVED_DATASETS",
    "DataArguments",
    "data_source_name",
    "label_names_of",
    "load_transfer_dataset",
    "read_data_files",
    "infer_modality",
    "infer_task",
    "verify_images",
]
