"""Open any supported flux dataset by looking at it: FluxVal-layout NetCDF, FLUXNET2015 or AmeriFlux CSV."""

from __future__ import annotations

import os
from pathlib import Path

from tamrl_coupler.data.dataset import FluxDataset
from tamrl_coupler.errors import InputError


def resolve_data_path(path: str | Path) -> Path:
    """Expand ``${TAMRL_SHARED}`` (default ``../shared``) and other environment variables in a config's data path."""
    text = str(path)
    if "TAMRL_SHARED" in text and "TAMRL_SHARED" not in os.environ:
        text = text.replace("${TAMRL_SHARED}", "../shared").replace("$TAMRL_SHARED", "../shared")
    return Path(os.path.expandvars(text)).expanduser()


def read_dataset(path: str | Path, period: str = "monthly") -> FluxDataset:
    """FluxVal layout (.nc) or FLUXNET/AmeriFlux files (.csv, or a directory of them), aggregated to ``period``."""
    path = resolve_data_path(path)
    if not path.exists():
        raise FileNotFoundError(f"data {path} does not exist")
    if path.is_dir() or path.suffix.lower() == ".csv":
        from tamrl_coupler.data.fluxnet import read_fluxnet

        return read_fluxnet(path, period=period)
    if path.suffix.lower() in (".nc", ".nc4", ".netcdf"):
        from tamrl_coupler.data.fluxval import read_fluxval

        return read_fluxval(path)
    raise InputError(f"{path}: unknown data format (expected a FluxVal-layout .nc file, a FLUXNET2015 / AmeriFlux "
                     ".csv file, or a directory of them)")
