"""The budget modes' prior: a checkpoint's own monthly-mean as-trained GPP and Reco on 1-degree land cells, from its
third (warm) year on the CRU CL 1.0 global test bed. It stands in for the months a run has not seen yet when the
component forms a cell's expected annual GPP and Reco (physics/budget.py), so that ``balanced`` and ``target`` hold
from the first year.

The file (``<checkpoint stem>_budget_prior.nc`` beside the checkpoint; ``tamrl-coupler testbed --write-prior``
makes it): ``cell`` (flat index on r360x180), ``gpp`` and ``reco`` (month, cell) packed as int16 of 0.001
gC m-2 d-1, and the checkpoint's SHA-256 fingerprint. A model cell takes the values of the nearest prior cell
within ``MAX_DISTANCE_KM`` (none further away: such cells start from the run's own months).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tamrl_coupler.errors import InputError
from tamrl_coupler.ncfiles import open_netcdf, read_array, write_atomic_netcdf

SUFFIX = "_budget_prior.nc"
SCALE = 0.001  # gC m-2 d-1 per packed unit
MAX_DISTANCE_KM = 400.0  # nearest prior cell: up to ~3.5 degrees (a model cell of 4 degrees finds its land)


@dataclass
class BudgetPrior:
    """Monthly as-trained rates (12, n) [gC m-2 d-1] of the prior cells at ``lat``/``lon``."""

    path: Path
    lat: np.ndarray
    lon: np.ndarray
    gpp: np.ndarray
    reco: np.ndarray
    fingerprint: str
    attrs: dict[str, str]

    def for_cells(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """(n, 12) GPP and Reco rates at cells ``lat``/``lon`` from the nearest prior cell (NaN where none is within
        MAX_DISTANCE_KM), and how many cells got none."""
        from scipy.spatial import cKDTree

        def xyz(la: np.ndarray, lo: np.ndarray) -> np.ndarray:
            p, q = np.deg2rad(np.asarray(la, dtype=np.float64)), np.deg2rad(np.asarray(lo, dtype=np.float64))
            return np.stack([np.cos(p) * np.cos(q), np.cos(p) * np.sin(q), np.sin(p)], axis=-1)

        dist, j = cKDTree(xyz(self.lat, self.lon)).query(xyz(lat, lon))
        far = dist * 6371.0 > MAX_DISTANCE_KM
        g = np.where(far[:, None], np.nan, self.gpp[:, j].T)
        r = np.where(far[:, None], np.nan, self.reco[:, j].T)
        return g, r, int(far.sum())


def prior_path_for(checkpoint: str | Path) -> Path:
    """Where the prior of ``checkpoint`` (a file) lives: beside it, ``<stem>_budget_prior.nc``."""
    p = Path(checkpoint)
    return p.with_name(p.stem + SUFFIX)


def write_budget_prior(path: str | Path, index: np.ndarray, gpp: np.ndarray, reco: np.ndarray, fingerprint: str,
                       attrs: dict[str, str]) -> Path:
    """``index`` (n,) flat r360x180 cells, ``gpp``/``reco`` (12, n) monthly-mean rates [gC m-2 d-1]."""
    bad = ~(np.isfinite(gpp) & np.isfinite(reco))
    if bad.any() or np.abs(gpp).max() > 30 or np.abs(reco).max() > 30:
        raise InputError(f"budget prior {path}: rates must be finite and within +-30 gC m-2 d-1 (int16 packing)")

    def fill(nc: Any) -> None:
        nc.setncattr("Conventions", "CF-1.8")
        nc.setncattr("title", "TAM-RL budget prior: a checkpoint's monthly-mean as-trained GPP and Reco")
        nc.setncattr("checkpoint_fingerprint", fingerprint)
        for k, v in attrs.items():
            nc.setncattr(k, v)
        nc.createDimension("month", 12)
        nc.createDimension("cell", index.size)
        c = nc.createVariable("cell", "i4", ("cell",), zlib=True)
        c.long_name = "flat index of the 1-degree cell on r360x180 (row from 89.5S, column from 0.5E)"
        c[:] = index
        for name, values, long in (("gpp", gpp, "gross primary productivity"), ("reco", reco, "ecosystem "
                                                                                "respiration")):
            v = nc.createVariable(name, "i2", ("month", "cell"), zlib=True, complevel=9, shuffle=True)
            v.scale_factor, v.add_offset = SCALE, 0.0
            v.units, v.long_name = "g m-2 d-1", f"monthly-mean as-trained {long} (grams of carbon)"
            v[:] = values

    return write_atomic_netcdf(path, fill, "budget prior")


def read_budget_prior(path: str | Path) -> BudgetPrior:
    path = Path(path)
    where = f"budget prior {path}"
    with open_netcdf(path, "budget prior") as ds:
        for name in ("cell", "gpp", "reco"):
            if name not in ds.variables:
                raise InputError(f"{where}: variable {name!r} is missing")
        index = np.asarray(read_array(ds["cell"], ..., where), dtype=np.int64)
        gpp = np.asarray(read_array(ds["gpp"], ..., where), dtype=np.float64)
        reco = np.asarray(read_array(ds["reco"], ..., where), dtype=np.float64)
        attrs = {k: str(ds.getncattr(k)) for k in ds.ncattrs()}
    if gpp.shape != (12, index.size) or reco.shape != gpp.shape:
        raise InputError(f"{where}: gpp/reco have shapes {gpp.shape}/{reco.shape}, expected (12, {index.size})")
    lat = -89.5 + (index // 360).astype(np.float64)
    lon = 0.5 + (index % 360).astype(np.float64)
    return BudgetPrior(path, lat, lon, gpp, reco, attrs.get("checkpoint_fingerprint", ""), attrs)


def resolve_prior(setting: str, checkpoint: str | Path, base: Path | None = None) -> BudgetPrior | None:
    """``budget.prior``: ``none`` -> None; ``auto`` -> the prior beside ``checkpoint`` when there is one; a path
    (relative to ``base``) -> that file, which must exist."""
    text = str(setting).strip()
    if text == "none":
        return None
    if text == "auto":
        path = prior_path_for(checkpoint)
        return read_budget_prior(path) if path.exists() else None
    path = Path(text).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    if not path.exists():
        raise InputError(f"budget.prior: {path} does not exist (expected 'auto', 'none' or a budget prior file)")
    return read_budget_prior(path)


def describe_prior(prior: BudgetPrior | None, fingerprint: str) -> str:
    """One line for the files' metadata: which prior, and whether it was made with this very checkpoint."""
    if prior is None:
        return "none (a cell's factor is 1 until its first month has been seen)"
    same = "made with this checkpoint" if prior.fingerprint == fingerprint else \
        f"made with ANOTHER checkpoint (fingerprint {prior.fingerprint[:12]}...): remake it"
    return f"{prior.path.name} ({prior.attrs.get('source', 'climatology')}; {same})"


__all__ = ["BudgetPrior", "MAX_DISTANCE_KM", "SUFFIX", "describe_prior", "prior_path_for", "read_budget_prior",
           "resolve_prior", "write_budget_prior"]
