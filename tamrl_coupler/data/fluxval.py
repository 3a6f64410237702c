"""Reader for CARDAMOM-FluxVal v1.0 style files (site x time NetCDF; FLUXNET2015 targets, NEE = Reco - GPP).

Also reads files this package writes in the same layout (the shipped sample, predict outputs of other tools):
the ``nee_convention`` attribute, when present, says which way ``nee`` points; FluxVal itself is FLUXNET's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tamrl_coupler import vocabulary
from tamrl_coupler.data.checks import check_site, check_values
from tamrl_coupler.data.dataset import FluxDataset, targets_from_fluxnet
from tamrl_coupler.errors import InputError
from tamrl_coupler.physics.carbon import SignConvention, convert_nee
from tamrl_coupler.vocabulary import igbp_index

# the continuous drivers a FluxVal file holds as (site, time) variables, in the model's units; land cover is a
# per-site coordinate of class codes
_EXPECTED_UNITS = {k: q.units for k, q in vocabulary.DRIVERS.items() if not q.categorical}


def read_fluxval(path: str | Path) -> FluxDataset:
    """Read a FluxVal-layout NetCDF file into a :class:`FluxDataset` (monthly, targets in uptake-positive NEE)."""
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"FluxVal file {path} does not exist")
    try:
        ds = xr.open_dataset(path)
    except Exception as exc:  # netCDF4 raises OSError / ValueError variants
        raise InputError(f"{path}: cannot be read as NetCDF ({exc})") from None
    with ds:
        for dim in ("site", "time"):
            if dim not in ds.dims:
                raise InputError(f"{path}: dimension '{dim}' is missing; expected variables on (site, time)")
        drivers: dict[str, np.ndarray] = {}
        for name, units in _EXPECTED_UNITS.items():
            if name not in ds:
                continue
            var = ds[name]
            if var.attrs.get("units", units) != units:
                raise InputError(f"{path}: variable '{name}' has units {var.attrs['units']!r}, expected {units!r}")
            drivers[name] = var.transpose("site", "time").values.astype(np.float64)
            check_values(drivers[name], name, str(path), ds["site"].values.astype(str))
        n_sites = ds.sizes["site"]
        igbp = ds["igbp"].values.astype(str) if "igbp" in ds.variables else np.array([""] * n_sites)
        if "igbp" in ds and ds["igbp"].dims == ("site", "time"):
            raise InputError(f"{path}: 'igbp' must be a per-site coordinate, not (site, time)")
        drivers["igbp"] = np.repeat(igbp_index(igbp)[:, None], ds.sizes["time"], axis=1)
        targets: dict[str, np.ndarray] = {}
        if "gpp" in ds and "nee" in ds:
            gpp = ds["gpp"].transpose("site", "time").values.astype(np.float64)
            nee = ds["nee"].transpose("site", "time").values.astype(np.float64)
            for name, values in (("gpp", gpp), ("nee", nee)):
                check_values(values, name, str(path), ds["site"].values.astype(str))
            source_conv = SignConvention.parse(ds["nee"].attrs.get("nee_convention", ds.attrs.get(
                "nee_convention", "atmosphere_positive")))
            nee_fluxnet = convert_nee(nee, source_conv, SignConvention.ATMOSPHERE_POSITIVE)
            targets = targets_from_fluxnet(gpp, nee_fluxnet)
        lat = ds["lat"].values.astype(np.float64) if "lat" in ds else np.full(n_sites, np.nan)
        lon = ds["lon"].values.astype(np.float64) if "lon" in ds else np.full(n_sites, np.nan)
        for s, site in enumerate(ds["site"].values.astype(str)):
            check_site(site, {"lat": lat[s], "lon": lon[s], "igbp": igbp[s]}, str(path))
        time = ds["time"].values.astype("datetime64[ns]")
        period = "monthly"
        if len(time) > 1 and np.median(np.diff(time).astype("timedelta64[D]").astype(int)) < 2:
            period = "daily"
        return FluxDataset(
            sites=ds["site"].values.astype(str), time=time, period=period, drivers=drivers, targets=targets,
            igbp=igbp,
            lat=ds["lat"].values.astype(np.float64) if "lat" in ds else np.zeros(0),
            lon=ds["lon"].values.astype(np.float64) if "lon" in ds else np.zeros(0),
            source=str(path), attrs={k: str(v) for k, v in ds.attrs.items()},
        )
