"""Errors a user can meet. Each carries one sentence that names the fix; the CLI prints it and exits 2."""


class IncopError(Exception):
    """A problem the user can fix (bad config, missing data, corrupt file, no GPU)."""


class ConfigError(IncopError):
    """The configuration is invalid or incompatible with an existing run."""


class DataError(IncopError):
    """A data set is missing, corrupt or truncated."""


class DeviceError(IncopError):
    """The requested device is not available."""


class TrainingDiverged(IncopError):
    """The training loss became NaN or infinite."""


class RunLocked(IncopError):
    """Another process is working on the same run directory."""
