"""Errors a user can fix.

Every check that rejects user input raises one of these, with a message that names the problem and
the change to make. Recipes catch `HfTransferError` at the top level and print only the message, so
a bad flag never ends in a deep traceback.
"""

__all__ = ["HfTransferError", "DataError", "ModelLoadError", "ConfigError", "HubPushError"]


class HfTransferError(ValueError):
    """Base class of the errors whose message tells the user what to change."""


class DataError(HfTransferError):
    """The data cannot be used as given: missing column, bad labels, empty split, unreadable file."""


class ModelLoadError(HfTransferError):
    """The model cannot be resolved or does not fit the data (unknown name, label-count mismatch)."""


class ConfigError(HfTransferError):
    """Arguments that clash or are out of range."""


class HubPushError(HfTransferError):
    """A push to the Hub failed; the local output directory is intact."""
