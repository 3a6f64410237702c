"""Offline inference on a dataset (predict / evaluate commands): run the ensemble over each site's record."""

from __future__ import annotations

import numpy as np
import torch

from tamrl_coupler.data.dataset import FluxDataset
from tamrl_coupler.errors import InputError
from tamrl_coupler.model.ensemble import Ensemble
from tamrl_coupler.model.features import LAT_INPUTS, PERIOD_UNITS
from tamrl_coupler.model.records import predict_records
from tamrl_coupler.physics.carbon import SignConvention, convert_nee, nee_from_components


def predict_dataset(ens: Ensemble, data: FluxDataset, convention: SignConvention | str | None = None,
                    progress=None) -> dict[str, np.ndarray]:
    """(site, time) float64 arrays of the ensemble mean and spread; NEE in ``convention`` (default: the model's).

    All sites are one batch (the ensemble evaluates them in cache-sized chunks), stepped one period at a time;
    ``progress``: a reporter updated once per period (see :meth:`Ensemble.predict_sequence`)."""
    if data.period != ens.meta.period:
        raise InputError(f"{data.source}: data are {data.period}, the checkpoint was trained on {ens.meta.period} "
                         "data")
    required = {d.name for d in ens.meta.drivers if d.required}
    x = data.driver_array(ens.meta.driver_names, required=required)
    for j, d in enumerate(ens.meta.drivers):
        if d.required and np.isnan(x[..., j]).all():
            raise InputError(f"{data.source}: required driver '{d.name}' ({d.units}) has no values")
    if any(d in ens.derived_inputs for d in LAT_INPUTS) and np.isnan(data.lat).any():
        bad = data.sites[np.isnan(data.lat)][:5].tolist()
        raise InputError(f"{data.source}: the checkpoint uses latitude, but site(s) {bad} have none (lat); "
                         "pass --lat SITE=DEG")
    f = predict_drivers(ens, x, data.time[0], data.lat, progress=progress)
    out = {k: f[k] for k in ens.outputs.target_fields}  # means, then spreads
    conv = SignConvention.parse(convention or ens.meta.sign_convention)
    if conv is not ens.convention:
        out["nee"] = nee_from_components(out["gpp"], out["reco"], conv)
    return out


def predict_drivers(ens: Ensemble, x: np.ndarray, first_period: np.datetime64, lat: np.ndarray,
                    progress=None) -> dict[str, np.ndarray]:
    """Drivers (site, time, D) from ``first_period`` -> (site, time) fields. Daily: each site over its own record
    (``model/records.py``, NaN outside it; ``progress`` updated once per site); monthly: every site stepped over
    the whole axis (``progress``: a reporter updated once per period)."""
    if ens.meta.period == "daily":
        return predict_records(ens, x, first_period, lat, progress=progress)
    return ens.predict_sequence(torch.from_numpy(np.asarray(x)), first_period=first_period, lat=lat,
                                progress=progress).to_numpy()


def predict_cold_starts(ens: Ensemble, data: FluxDataset) -> dict[str, np.ndarray]:
    """Every block of every site predicted alone from its own drivers: a fresh state (no history, zero LSTM state)
    at the block's first period -- what a run or a prior that starts there gives. Blocks are calendar months of
    daily data and calendar years of monthly data. (site, time) arrays like :func:`predict_dataset`, NaN in blocks
    without drivers. Vectorised: every (site, block) is one cell."""
    if data.period != ens.meta.period:
        raise InputError(f"{data.source}: data are {data.period}, the checkpoint was trained on {ens.meta.period} "
                         "data")
    x = data.driver_array(ens.meta.driver_names)
    unit = PERIOD_UNITS[data.period]
    days = data.time.astype(f"datetime64[{unit}]")
    block = days.astype("datetime64[M]" if data.period == "daily" else "datetime64[Y]")
    starts = np.flatnonzero(np.r_[True, block[1:] != block[:-1]])
    stops = np.r_[starts[1:], len(days)]
    length = int((stops - starts).max())
    required = [j for j, d in enumerate(ens.meta.drivers) if d.required]
    complete = np.isfinite(x[..., required]).all(axis=-1)
    # one cell per (site, block) with drivers in at least one period
    site, m = np.nonzero(np.stack([complete[:, a:b].any(axis=1) for a, b in zip(starts, stops, strict=True)], 1))
    cells = np.full((len(site), length, x.shape[2]), np.nan, dtype=np.float32)
    for i in range(len(site)):
        a, b = starts[m[i]], stops[m[i]]
        cells[i, :b - a] = x[site[i], a:b]
    out = {k: np.full((data.n_sites, len(days)), np.nan) for k in ens.outputs.target_fields}
    if len(site) == 0:
        return out
    lat = data.lat[site]
    state = ens.init_state(len(cells), first_period=days[0], lat=lat if np.isfinite(lat).all() else None)
    state.period[:] = torch.as_tensor(days[starts[m]].astype(np.int64), device=state.period.device)
    f = ens.predict_sequence(torch.from_numpy(cells), state=state).to_numpy()
    for i in range(len(site)):
        a, b = starts[m[i]], stops[m[i]]
        for k in ens.outputs.target_fields:
            out[k][site[i], a:b] = f[k][i, :b - a]
    return out


def set_site_lat(data: FluxDataset, specs: list[str] | None) -> None:
    """``--lat``: '45.2' for every site, or 'US-AR1=36.4' per site (sites a file gives no latitude for)."""
    for spec in specs or []:
        site, _, value = spec.rpartition("=")
        try:
            lat = float(value)
        except ValueError:
            raise InputError(f"--lat {spec!r}: expected DEG or SITE=DEG with DEG a number") from None
        if not abs(lat) <= 90:
            raise InputError(f"--lat {spec!r}: latitude {lat} is outside [-90, 90]")
        if not site:
            data.lat[:] = lat
            continue
        hit = np.flatnonzero(data.sites.astype(str) == site)
        if hit.size == 0:
            raise InputError(f"--lat {spec!r}: no site {site!r} in {data.source} (sites: {data.sites[:5].tolist()})")
        data.lat[hit] = lat


def targets_in(data: FluxDataset, convention: SignConvention | str) -> dict[str, np.ndarray]:
    t = dict(data.targets)
    t["nee"] = convert_nee(t["nee"], data.convention, convention)
    return t
