"""Errors of the edge registry; each carries one sentence that names the fix (the CLI exits 2)."""

from incop_core.foundations.errors import IncopError


class RegistryError(IncopError):
    """A registry entry is missing, malformed or cannot be published."""


class NotFound(RegistryError):
    """The registry has no such name, version or file."""


class Unreachable(RegistryError):
    """The registry did not answer after every retry."""


class VerificationError(RegistryError):
    """A downloaded file or manifest does not match its checksum or signature."""


class DeviceError(RegistryError):
    """The device directory is locked, full or has nothing to roll back to."""
