"""The package's one user-facing error type."""


class RegistryError(ValueError):
    """A registry or data file is invalid; the message names file, key/line and problem."""
