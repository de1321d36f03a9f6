"""The modalities a backbone reads, one registry entry each (`MODALITIES`): `modality.py` is the entry (what differs
between text and images), `registry.py` the two entries."""

from .modality import ModalityEntry
from .registry import MODALITIES

__all__ = ["MODALITIES", "ModalityEntry"]
