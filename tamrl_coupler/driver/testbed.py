"""The global test bed: a checkpoint run over the whole land surface on a repeated CRU CL 1.0 climatological year
(io/testbed.py makes the forcing), its global and latitude-band totals for each budget mode, against the published
anchors -- ``tamrl-coupler testbed`` (docs/testbed.md).

The model runs over the cells in chunks (memory stays below ~1 GB), each cell from a cold start on the first day,
the year repeated ``years`` times; the budget modes are applied afterwards by the component's own rule
(physics/budget.py: the same arithmetic, period by period, no look-ahead).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tamrl_coupler.errors import InputError
from tamrl_coupler.io.testbed import LandCells, cru_land_cells, daily_drivers, daily_fields, monthly_drivers, year_axis

FIELDS = ("gpp", "reco", "gpp_std", "reco_std", "nee_std")


@dataclass
class TestbedRun:
    """As-trained model output on the test bed: (cells, periods) float32 rates [gC m-2 d-1] of ``FIELDS``."""

    checkpoint: str
    fingerprint: str
    period: str
    starts: np.ndarray  # datetime64[ns] period starts
    fields: dict[str, np.ndarray]
    settings: dict[str, Any]


def shared_paths(shared: str | Path) -> tuple[Path, Path]:
    """The CRU CL archives and the GLDAS land mask under ``shared`` (the project's ../shared)."""
    shared = Path(shared)
    cru, mask = shared / "data" / "cru_cl", shared / "data" / "gldas" / "GLDASp4_landmask_025d.nc4"
    if not cru.is_dir():
        raise InputError(f"{cru}: the CRU CL 1.0 normals are not there (../shared/data/cru_cl; set --shared)")
    return cru, mask


def load_cells(shared: str | Path) -> LandCells:
    cru, mask = shared_paths(shared)
    return cru_land_cells(cru, landmask=mask if mask.exists() else None)


def model_drivers(ens: Any, cells: LandCells, vpd: str, weather: str) -> dict[str, np.ndarray]:
    """One year of the model's drivers (periods, cells) for ``ens``'s period."""
    if ens.meta.period == "daily":
        return daily_drivers(daily_fields(cells, vpd=vpd, weather=weather))
    return monthly_drivers(cells, vpd=vpd)


def run_testbed(ens: Any, cells: LandCells, years: int, vpd: str = "diurnal", weather: str = "synthetic",
                chunk: int = 2000, progress: Any = None) -> dict[str, np.ndarray]:
    """The ensemble over every cell for ``years`` repeated years -> (cells, periods) float32 ``FIELDS``."""
    import torch

    from tamrl_coupler.model.inference import predict_drivers

    drv = model_drivers(ens, cells, vpd, weather)
    names = ens.meta.driver_names
    starts = year_axis(ens.meta.period, years)
    per_year = next(iter(drv.values())).shape[0]
    out = {k: np.empty((cells.size, per_year * years), dtype=np.float32) for k in FIELDS}
    for a in range(0, cells.size, chunk):
        b = min(a + chunk, cells.size)
        x = np.full((b - a, per_year * years, len(names)), np.nan, dtype=np.float32)
        for j, name in enumerate(names):
            if name in drv:
                x[:, :, j] = np.tile(drv[name][:, a:b].T, (1, years))
        with torch.inference_mode():
            f = predict_drivers(ens, x, starts[0], cells.lat[a:b])
        for k in FIELDS:
            out[k][a:b] = f[k]
        if progress is not None:
            progress.update(b - a)
    return out


def raw_key(fingerprint: str, settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps({"fingerprint": fingerprint, **settings}, sort_keys=True).encode()
                          ).hexdigest()[:16]


def save_run(path: Path, run: TestbedRun) -> Path:
    from tamrl_coupler.atomicfile import atomic_path

    with atomic_path(path, "test bed model output") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, starts=run.starts.astype("datetime64[D]").astype(np.int64),
                     meta=np.array(json.dumps({"checkpoint": run.checkpoint, "fingerprint": run.fingerprint,
                                               "period": run.period, "settings": run.settings})),
                     **run.fields)
    return path


def load_run(path: Path) -> TestbedRun:
    with np.load(path) as z:
        meta = json.loads(str(z["meta"]))
        return TestbedRun(meta["checkpoint"], meta["fingerprint"], meta["period"],
                          z["starts"].astype("datetime64[D]").astype("datetime64[ns]"),
                          {k: z[k] for k in FIELDS}, meta["settings"])


__all__ = ["FIELDS", "TestbedRun", "load_cells", "load_run", "model_drivers", "raw_key", "run_testbed", "save_run",
           "shared_paths"]
