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


def data_period(path: str | Path) -> str:
    """The period of the data at ``path``, to choose a checkpoint by: ``daily`` for daily tower (DD) files or a
    folder of them, ``monthly`` otherwise (FluxVal NetCDF, FLUXNET/AmeriFlux files aggregated to months)."""
    from tamrl_coupler.data.fluxnet_daily import DAILY_FILE

    path = resolve_data_path(path)
    names = [p.name for p in path.glob("*.csv")] if path.is_dir() else [path.name]
    return "daily" if any(DAILY_FILE.match(n) for n in names) else "monthly"


def read_dataset(path: str | Path, period: str = "monthly", sites: str | Path | None = None) -> FluxDataset:
    """FluxVal layout (.nc) or FLUXNET/AmeriFlux files (.csv, or a directory of them), aggregated to ``period``.

    ``period="daily"`` on daily tower files (FLUXNET2015 and ICOS Warm Winter 2020 DD names) reads them with
    their site table (``sites``, default ``sites.csv`` beside them): latitude, elevation and land cover."""
    path = resolve_data_path(path)
    if not path.exists():
        raise FileNotFoundError(f"data {path} does not exist")
    if sites is not None and data_period(path) != "daily":
        raise InputError(f"{path}: a site table (sites={sites}) is for daily tower files (FLX_<site>_<FLUXNET2015|"
                         "ICOSWW2020>_<set>_DD_*.csv); FluxVal and FLUXNET monthly data carry their sites")
    if period == "daily" and (path.is_dir() or path.suffix.lower() == ".csv"):
        from tamrl_coupler.data.fluxnet_daily import DAILY_FILE, read_fluxnet_daily

        if (path.is_dir() and any(DAILY_FILE.match(p.name) for p in path.glob("*.csv"))) or \
                DAILY_FILE.match(path.name):
            return read_fluxnet_daily(path, sites=None if sites is None else resolve_data_path(sites))
    if path.is_dir() or path.suffix.lower() == ".csv":
        from tamrl_coupler.data.fluxnet import read_fluxnet

        return read_fluxnet(path, period=period)
    if path.suffix.lower() in (".nc", ".nc4", ".netcdf"):
        from tamrl_coupler.data.fluxval import read_fluxval

        return read_fluxval(path)
    raise InputError(f"{path}: unknown data format (expected a FluxVal-layout .nc file, a FLUXNET2015 / AmeriFlux "
                     ".csv file, or a directory of them)")
