"""Errors a user can meet in export and benchmarking; each is one sentence naming the fix (CLI exit 2)."""

from incop_core.foundations.errors import IncopError


class DeployError(IncopError):
    """A run or model cannot be exported or benchmarked as asked."""


class RunNotFinished(DeployError):
    """The run's pruning loop has not finished yet."""


class SparsityMismatch(DeployError):
    """The final model's sparsity disagrees with the run's record, or a masked weight is non-zero."""


class ExportFailed(DeployError):
    """torch.onnx could not export a layer, or the exported file failed its own checks."""


class ModelFileError(DeployError):
    """A file given as an ONNX model is missing, corrupt or not ONNX."""


class ProfileError(DeployError):
    """An unknown target profile, or a model whose input does not fit the profile."""
