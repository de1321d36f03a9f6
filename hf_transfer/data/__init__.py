"""Load any data source into one canonical `datasets.DatasetDict`.

Probing, fine-tuning and adaptation code should never care where the data came from. Whatever the
source (a built-in offline set, a Hub id, csv/tsv/json/jsonl/parquet files, or image folders),
`load_transfer_dataset` returns the same shape:

- splits `train` and `validation` always, `test` when the source has one (validation is carved out
  of train, stratified and seeded, when the source has none);
- columns `text` (string) *or* `image` (`datasets.Image`, PIL when read), and `label`, a
  `datasets.ClassLabel` with names that is identical across all splits. Every other column is dropped.

Labels keep the meaning they have in the file: a csv's cells are text, so `1`, `01` and `1.0` are three names (two
that are one number written differently stop the run, as do names differing only in letter case); names joined by
`--label_separator` are several labels only under `--task multi_label`; text is a number only in the dot format
(`1.5`, never `1,5`), and a regression target must be finite in float32. Every file, csv to CoNLL, must be UTF-8.

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
from .splits import carve_split

__all__ = [
    "BUILTIN_DATASETS",
    "DERIVED_DATASETS",
    "DataArguments",
    "carve_split",
    "data_source_name",
    "label_names_of",
    "load_transfer_dataset",
    "read_data_files",
    "infer_modality",
    "infer_task",
    "verify_images",
]
