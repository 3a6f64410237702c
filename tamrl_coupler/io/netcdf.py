"""Opening NetCDF files with errors that say which file it was and what it was meant to be."""

from __future__ import annotations

from pathlib import Path

from tamrl_coupler.errors import InputError


def open_netcdf(path: str | Path, what: str, error: type[Exception] = InputError):
    """``netCDF4.Dataset(path)``; a missing or unreadable file raises ``error`` naming ``what`` and the path."""
    import netCDF4

    path = Path(path)
    if not path.exists():
        raise error(f"{what} {path} does not exist")
    try:
        return netCDF4.Dataset(path)
    except OSError as exc:
        raise error(f"{what} {path} is not a readable NetCDF file: {exc}") from None
