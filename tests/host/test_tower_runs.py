"""Flux towers through the coupling component at 30-min steps (needs ../shared, skips without it).

* Daily tower met spread over the day by solar geometry: the component's daily means are `predict`'s daily
  predictions on the same days from the same cold start, to rounding -- the component accumulates exactly the daily
  model's drivers from its steps, its state advances once a day as `predict`'s, each day's total is kept -- and the
  step fluxes follow light and temperature within the day; the first days (cold start) are sensible fluxes.
* The real half-hourly month DE-Tha 2014-06 with the shipped daily checkpoint: what results/de_tha_halfhourly.md
  shows as met (the mean diurnal cycles of GPP and NEE), NEE = Reco - GPP on every step.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from conftest import REPO, SHARED, shared_path, small_daily_checkpoint


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_coupled_towers_equal_predict_day_by_day(tmp_path, monkeypatch):
    shared_path("data/fluxnet_daily/sites.csv")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    cpr = _script("coupled_point_run")
    checkpoint = small_daily_checkpoint(tmp_path / "daily.npz")
    work = tmp_path / "work"
    work.mkdir()
    res = cpr.coupled_vs_predict(SHARED, str(checkpoint), work, sites=("FI-Hyy", "IT-Cp2", "AU-Rig"),
                                 first_day="2013-05-01", n_days=4)
    for flux, d in cpr.differences(res).items():
        # float32 rounding: the component steps the batched kernels, predict evaluates whole records
        assert d["max_abs"] < 2e-6 * max(1.0, d["mean_level"]), f"{flux}: component and predict differ: {d}"
    assert res["nee_identity"] == 0.0
    assert min(res["within"]["gpp_rsds"]) > 0.8  # GPP in the day's light
    assert min(res["within"]["reco_tas"]) > 0.6  # Reco in the day's warmth
    for flux in ("gpp", "reco", "nee"):  # every day of every tower compared: no NaN dropped from the differences
        assert np.isfinite(res["predicted"][flux]).all() and np.isfinite(res["coupled"][flux]).all(), flux
    # the cold start: the first day's fluxes are finite, positive and where predict has them
    for flux in ("gpp", "reco"):
        assert np.isfinite(res["coupled"][flux]).all() and (res["coupled"][flux][:, 0] > 0).all()


def test_de_tha_month_diurnal_cycles_and_balance(tmp_path, monkeypatch):
    shared_path("data/halfhourly/DE-Tha_2014-06_halfhourly.nc")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    res = _script("de_tha_halfhourly").run_tower_month(SHARED, "daily", Path(tmp_path))
    s = res["scores"]
    assert res["n_steps"] == 1438 and res["first_local"] == "2014-06-01T01:00:00"
    assert res["nee_identity"] == 0.0
    assert s["gpp"].diurnal_r >= 0.9 and s["nee"].diurnal_r >= 0.9
    assert s["gpp"].model_mean > 0 and s["reco"].model_mean > 0
    # the cold start: the run's first (UTC) day is no outlier of its month
    days = res["utc_day_gpp"]
    assert 0.5 * days.mean() < days[0] < 1.5 * days.mean()
