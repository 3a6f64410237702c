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


class OutputError(TamrlError, OSError):
    """A file could not be written (full disk, no permission, a directory where a file was meant); the message
    names the file. Whatever was half written was removed."""


class RankFailure(TamrlError):
    """A failure on another rank that was not one of the product's own error types (a library's exception); raised
    on every rank by :mod:`tamrl_coupler.parallel` so that no rank is left waiting in a collective."""


class StopRequested(TamrlError):
    """A stop signal (SIGTERM, SIGINT, SIGHUP, SIGUSR1) reached some rank: every rank finished the coupling step and
    raises this after it (the step's fluxes are valid); the host writes its restart and ends (the CLI: exit status
    75, the Fortran bridge: ``TAMRL_STOPPED``). ``signal``: the signal's number; ``rank``: the rank it reached."""

    def __init__(self, message: str, signal: int = 0, rank: int = 0):
        super().__init__(message)
        self.signal = signal
        self.rank = rank
