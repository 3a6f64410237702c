"""The product's exception types. Messages always name the field, file, rank, cell or key at fault."""

from __future__ import annotations


class TamrlError(Exception):
    """Base of every error this package raises on purpose."""


class InputError(TamrlError, ValueError):
    """Bad input data: NaN/fill values, out-of-range values, wrong shapes, unknown or missing fields."""


class ConfigError(TamrlError, ValueError):
    """A configuration value is missing, unknown or of the wrong type; the message names the key path."""


class CheckpointError(TamrlError):
    """A checkpoint is missing, corrupt, or does not match what the caller needs."""


class RegridError(TamrlError, ValueError):
    """Grids, weights or masks that cannot be used together."""
