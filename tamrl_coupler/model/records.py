"""Whole-record evaluation of a daily ensemble: every site from the first to the last day of its own record, all
days of a record through the network's sequence path at once.

Why not step the union day axis: sites of a multi-tower dataset cover different years of one axis (1996-2020 for
the shared towers), so stepping it would run most sites through years without drivers before their record starts --
a state no run ever has -- and cost one Python step per day of the longest record for every site. Here each record
starts from a fresh state on its own first day (what a run started there holds) and sites of similar length are
batched. The result equals stepping each site alone over its record (tested, to float32 rounding); the coupling
component keeps stepping.
"""

from __future__ import annotations

import numpy as np
import torch

from tamrl_coupler.errors import InputError
from tamrl_coupler.model.daily_ensemble import monthly_embedding, slot_features
from tamrl_coupler.model.ensemble import Ensemble
from tamrl_coupler.model.history import RecordMonths, month_of_day


def record_spans(x: np.ndarray, required: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per site (of x (S, T, D)): the first day index with every required driver and one past the last such day
    (0, 0 for a site with none). Gaps inside a record are stepped through (the model masks missing drivers)."""
    ok = np.isfinite(x[..., required]).all(axis=-1)
    has = ok.any(axis=1)
    start = np.where(has, ok.argmax(axis=1), 0)
    stop = np.where(has, x.shape[1] - ok[:, ::-1].argmax(axis=1), 0)
    return start, stop


@torch.no_grad()
def predict_records(ens: Ensemble, x: np.ndarray, first_day: np.datetime64, lat: np.ndarray,
                    sites_per_batch: int = 32, progress=None) -> dict[str, np.ndarray]:
    """Daily drivers x (S, T, D) on a day axis from ``first_day``, latitudes (S,) -> the ensemble's fields
    (``ens.outputs.flux_fields``: gpp, reco, nee and their spreads) as (S, T) float64 arrays, NaN outside each
    site's record (:func:`record_spans`)."""
    if ens.meta.period != "daily":
        raise InputError(f"whole-record evaluation is for daily checkpoints, this one is {ens.meta.period}")
    x = np.asarray(x, dtype=np.float32)
    lat = np.asarray(lat, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != len(ens.meta.drivers) or lat.shape != x.shape[:1]:
        raise InputError(f"whole-record evaluation: drivers {x.shape} and latitudes {lat.shape}, expected (sites, "
                         f"days, {len(ens.meta.drivers)}: {ens.meta.driver_names}) and (sites,)")
    n_sites, n_days, _ = x.shape
    day0 = int(np.datetime64(first_day, "D").astype(np.int64))
    start, stop = record_spans(x, [i for i, d in enumerate(ens.meta.drivers) if d.required])
    fields = ens.outputs.flux_fields
    out = {k: np.full((n_sites, n_days), np.nan) for k in fields}
    history = RecordMonths(x, day0) if ens.members[0].embedding else None
    order = [s for s in np.argsort(start - stop, kind="stable") if stop[s] > start[s]]  # longest first
    dev = ens.device
    for g in range(0, len(order), sites_per_batch):
        sites = np.array(order[g:g + sites_per_batch])
        length = int((stop[sites] - start[sites]).max())
        day_index = start[sites, None] + np.arange(length)
        inside = day_index < stop[sites, None]
        day_index = np.minimum(day_index, n_days - 1)
        xs = torch.from_numpy(np.where(inside[..., None], x[sites[:, None], day_index], np.nan)).to(dev)
        days = torch.from_numpy(day0 + day_index).to(dev)
        la = torch.as_tensor(lat[sites], dtype=torch.float32, device=dev)
        feats = ens.features(xs, days, la[:, None])
        h0 = torch.zeros((len(sites), ens.members[0].hidden), device=dev)
        if history is not None:
            month = month_of_day(days)
            month_index = month - month[:, :1]
            months = month[:, :1].cpu().numpy() + np.arange(int(month_index.max()) + 1)
            slots = torch.from_numpy(history.tables(sites, months, start[sites])).to(dev)
            wins = slot_features(ens.encoder, slots, la[:, None].expand(-1, months.shape[1]))
        member_out = []
        for net in ens.members:
            if history is not None:
                o, _, _ = net.forward_embedded(feats, monthly_embedding(net, wins, month_index), h0, h0)
            else:
                o, _, _ = net.forward_sequence(feats, None, h0, h0)
            member_out.append(o)
        flat = torch.stack(member_out, dim=2).flatten(0, 1)  # (B * L, M, n_out)
        f = ens.fluxes_from_members(flat, xs.flatten(0, 1)).to_numpy()
        rows, cols = np.nonzero(inside)
        for k in fields:
            out[k][sites[rows], day_index[rows, cols]] = f[k].reshape(len(sites), length)[rows, cols]
        if progress is not None:
            progress.update(len(sites))
    if progress is not None and n_sites > len(order):
        progress.update(n_sites - len(order))  # sites without a record: nothing to evaluate
    return out
