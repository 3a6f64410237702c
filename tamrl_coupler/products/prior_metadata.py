"""What an inversion prior file says about itself: what its uncertainty is, how its errors are correlated in time and
space, which checkpoint made it, and the discovery metadata (ACDD-1.3: licence, dates, coverage, history).

The uncertainty is the checkpoint's spread: for the shipped checkpoints a *calibrated predictive standard deviation*
of the flux at an unseen site, fitted at tower scale on grouped-CV errors (not the members' disagreement). Its error
correlation comes from a fit on the CV residuals of held-out towers (``training/error_correlation.py``,
``scripts/fit_error_correlation.py``, ``results/error_correlation_daily.md``), shipped as a small JSON beside the
checkpoint it belongs to and copied into every prior made with that checkpoint: numbers an inversion system can
read as attributes of ``nee_uncertainty`` to build its prior covariance (CTDAS/CarbonTracker-Europe and CAMS use
exactly this form: a standard deviation per cell and period, exponential decay with distance and with time lag).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from tamrl_coupler import __version__
from tamrl_coupler.errors import InputError

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
# checkpoint file name -> its fitted error-correlation model (written by scripts/fit_error_correlation.py)
ERROR_CORRELATIONS = {"tamrl_daily.npz": "tamrl_daily_error_correlation.json"}

LICENSE = ("CC-BY-4.0 (https://creativecommons.org/licenses/by/4.0/): fluxes of a model trained on FLUXNET2015 "
           "Tier 1 and ICOS Warm Winter 2020 eddy-covariance data (CC-BY-4.0); attribution in 'references'")
REFERENCES = (
    "Pastorello, G. et al. (2020) The FLUXNET2015 dataset and the ONEFlux processing pipeline for eddy covariance "
    "data, Sci Data 7:225, doi:10.1038/s41597-020-0534-3; Warm Winter 2020 Team & ICOS Ecosystem Thematic Centre "
    "(2022) Warm Winter 2020 ecosystem eddy covariance flux product, doi:10.18160/2G60-ZHAK; Chevallier, F. et al. "
    "(2012) What eddy-covariance measurements tell us about prior land flux errors in CO2-flux inversion schemes, "
    "Global Biogeochem. Cycles 26, GB1021, doi:10.1029/2010GB003974 (the error-correlation anchors)")


def error_correlation_for(checkpoint: str | None) -> dict | None:
    """The shipped error-correlation model of the checkpoint named ``checkpoint`` (its file name), or None."""
    name = ERROR_CORRELATIONS.get(Path(checkpoint).name) if checkpoint else None
    if name is None or not (CHECKPOINTS / name).exists():
        return None
    try:
        return json.loads((CHECKPOINTS / name).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"error-correlation model {CHECKPOINTS / name}: not readable JSON ({exc})") from None


def window_mean_sd_factor(model: dict, days: int) -> float:
    """SD of the mean of ``days`` daily errors of equal SD under ``model``, over that SD: what the fully correlated
    time mean (the file's value) overstates by for a window of ``days`` days (1 = no overstatement)."""
    lag = np.abs(np.subtract.outer(np.arange(days), np.arange(days))).astype(float)
    tau = float(model["temporal_efolding_days"])
    rho = model["temporal_persistent_share"] + model["temporal_decaying_share"] * np.exp(-lag / tau)
    np.fill_diagonal(rho, 1.0)
    return float(np.sqrt(rho.sum()) / days)


def uncertainty_attributes(flux_attrs: dict[str, str], frequency: str) -> dict[str, Any]:
    """Attributes of ``nee_uncertainty``: what it is, how it was aggregated, and its error-correlation model."""
    meaning = flux_attrs.get("spread_meaning", "the checkpoint's spread (the flux file does not say what it is)")
    out: dict[str, Any] = {
        "long_name": f"1-sigma uncertainty of the NEE prior: {meaning}",
        "uncertainty_definition": (
            f"{meaning}; for NEE, times the land fraction, converted to mol CO2 m-2 s-1 and remapped with the "
            f"fluxes. Within each {frequency} window the time mean of the step values: errors taken as fully "
            "correlated within a window, an upper bound for windows longer than a day"),
        "uncertainty_scale": "fitted at tower scale (daily fluxes at single eddy-covariance towers held out in "
                             "grouped cross-validation); a grid cell averages over more landscape"}
    model = error_correlation_for(flux_attrs.get("checkpoint"))
    if model is None:
        out["error_correlation_model"] = ("none fitted for this checkpoint (fit one on its cross-validation: "
                                          "scripts/fit_error_correlation.py)")
        return out
    out.update({
        "error_correlation_model": model["model"],
        "error_correlation_formula": model["formula"],
        "temporal_correlation_efolding_days": float(model["temporal_efolding_days"]),
        "temporal_correlation_efolding_days_ci90": np.asarray(model["temporal_efolding_days_ci90"], float),
        "temporal_correlation_decaying_share": float(model["temporal_decaying_share"]),
        "temporal_correlation_persistent_share": float(model["temporal_persistent_share"]),
        "spatial_correlation_length_km": float(model["spatial_length_km"]),
        "spatial_correlation_length_km_ci90": np.asarray(model["spatial_length_km_ci90"], float),
        "spatial_correlation_share": float(model["spatial_share"]),
        "spatial_correlation_note": model.get("spatial_note", ""),
        "error_correlation_tower_pairs": int(model["tower_pairs"]),
        "error_correlation_fitted_at": model["fitted_at"],
        "error_correlation_source": f"{model['results']} (CV row '{model['cv_row']}', {model['n_sites']} towers, "
                                    f"{model['n_site_days']} held-out site-days; tower error SD "
                                    f"{model['error_sd_gC_m2_d1']} gC m-2 d-1)",
        "error_correlation_anchor": model["anchor"]})
    if frequency == "monthly":
        out["monthly_mean_sd_factor"] = round(window_mean_sd_factor(model, 30), 3)
        out["uncertainty_definition"] += (
            f"; under the error-correlation model the SD of a 30-day mean is {out['monthly_mean_sd_factor']} "
            "times this value")
    return out


def _iso(t: np.datetime64) -> str:
    return str(np.datetime64(t, "s")) + "Z"


def prior_attributes(flux_attrs: dict[str, str], flux_file: str, frequency: str, grid: str,
                     start: np.datetime64, end: np.datetime64, lat: np.ndarray, lon: np.ndarray,
                     points: bool = False, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Global attributes of a prior file made from ``flux_file`` (whose global attributes are ``flux_attrs``):
    ACDD discovery metadata, the checkpoint's identity, the provenance and ``history``. ``extra`` (e.g. a budget
    mode) is added last."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    ckpt = {k: v for k, v in flux_attrs.items() if k.startswith("checkpoint") or k == "spread_meaning"}
    name = ckpt.get("checkpoint", "unknown (the flux file does not record its checkpoint)")
    step = {"3hourly": "PT3H", "daily": "P1D", "monthly": "P1M"}.get(frequency, frequency)
    entry = (f"{now} tamrl-coupler {__version__} prior: {frequency} means of {Path(flux_file).name} on grid "
             f"'{grid}' (NEE and uncertainty x land fraction, mol CO2 m-2 s-1, positive up)")
    history = "\n".join(h for h in (flux_attrs.get("history", ""), entry) if h)
    attrs: dict[str, Any] = {
        "title": f"TAM-RL net ecosystem exchange prior ({frequency} means) for atmospheric CO2 inversions",
        "summary": ("Net ecosystem exchange (Reco - GPP, positive to the atmosphere) of the TAM-RL machine-learned "
                    "carbon-flux model run by tamrl-coupler, per m2 of grid cell, with its 1-sigma uncertainty and "
                    "an error-correlation model in time and space (attributes of nee_uncertainty)."),
        "keywords": "net ecosystem exchange, CO2 flux, carbon cycle, inversion prior, flux uncertainty, TAM-RL",
        "source": f"tamrl-coupler {__version__}: TAM-RL ensemble, checkpoint {name}",
        "institution": flux_attrs.get("institution", "tamrl-coupler developers"),
        "creator_name": "tamrl-coupler developers",
        "creator_type": "group",
        "product_version": __version__,
        "processing_level": "model output (TAM-RL driven by the run's forcing), aggregated and remapped",
        "license": LICENSE,
        "references": REFERENCES,
        "date_created": now,
        "history": history,
        "standard_name_vocabulary": "CF Standard Name Table v93",
        "cdm_data_type": "Station" if points else "Grid",
        "time_coverage_start": _iso(start),
        "time_coverage_end": _iso(end),
        "time_coverage_resolution": step,
        "geospatial_lat_min": float(np.nanmin(lat)), "geospatial_lat_max": float(np.nanmax(lat)),
        "geospatial_lon_min": float(np.nanmin(lon)), "geospatial_lon_max": float(np.nanmax(lon)),
        "geospatial_lat_units": "degrees_north", "geospatial_lon_units": "degrees_east",
        "comment": ("nee_uncertainty is the checkpoint's spread (see its uncertainty_definition), not an ensemble "
                    "spread of independent models; its error correlation in time and space is in its attributes "
                    "(temporal_correlation_efolding_days, spatial_correlation_length_km)"),
        "flux_file": Path(flux_file).name,
        **ckpt,
    }
    if "checkpoint" not in ckpt:
        attrs["checkpoint"] = name
    attrs.update(extra or {})
    return attrs
