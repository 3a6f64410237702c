"""scripts/calibrate_spread.py end to end on the shipped sample: nested coverage, the calibration stored in the
checkpoint, and the loaded ensemble then giving calibrated spreads."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import torch

from tamrl_coupler.data.reader import read_dataset
from tamrl_coupler.data.sample import sample_path
from tamrl_coupler.model.checkpoint import default_checkpoint_path, load_checkpoint
from tamrl_coupler.model.inference import predict_dataset

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "calibrate_spread.py"


def _script():
    spec = importlib.util.spec_from_file_location("calibrate_spread", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_calibration_script_fits_reports_and_stores(tmp_path):
    torch.set_num_threads(1)
    data = read_dataset(sample_path())
    ens = load_checkpoint(None)
    ens.calibration = None  # the shipped checkpoint is calibrated: start from its members' own spread
    pred = predict_dataset(ens, data)
    fold = np.arange(data.n_sites) % 3
    npz = tmp_path / "cv_predictions.npz"
    np.savez(npz, site=data.sites, fold=fold, **{f"tamrl/{v}": pred[v] for v in ("gpp", "reco", "nee")})
    out = tmp_path / "calibrated.npz"
    report, page = tmp_path / "report.json", tmp_path / "report.md"
    assert _script().main([str(npz), str(sample_path()), str(default_checkpoint_path()), "--out", str(out),
                           "--json", str(report), "--markdown", str(page)]) == 0
    r = json.loads(report.read_text())
    text = page.read_text()
    assert f"| GPP | global | {r['gpp']['coverage']:.3f} |" in text and "--markdown" in text
    for v in ("gpp", "reco", "nee"):
        # nested (held-out folds): near the 90 % interval, not just wider than the members' spread
        assert 0.8 <= r[v]["coverage"] <= 0.97 and 0.7 <= r[v]["spread_over_rmse"] <= 1.4, (v, r[v])
    cal = load_checkpoint(out)
    assert cal.calibration is not None and "calibrated" in cal.spread_meaning
    p2 = predict_dataset(cal, data)
    np.testing.assert_array_equal(p2["gpp"], pred["gpp"])  # means unchanged
    ok = np.isfinite(data.targets["gpp"])
    err = np.abs(p2["gpp"] - data.targets["gpp"])[ok]
    inside_cal = np.mean(err <= 1.645 * p2["gpp_std"][ok])
    inside_ens = np.mean(err <= 1.645 * pred["gpp_std"][ok])
    assert inside_cal > inside_ens and inside_cal > 0.8  # the member spread alone covers far less


def test_site_error_model_fitted_nested_stored_and_applied(tmp_path):
    """The day + site error model through the script on the sample: the novelty of every month against the
    towers' mean embeddings, fitted and scored nested (beside the global model), stored with the checkpoint's own
    reference embeddings, and then applied by predict (means unchanged, spreads the error model's)."""
    from tamrl_coupler.model.site_error import SiteErrorModel
    from tamrl_coupler.training.novelty import daily_embeddings, training_novelty

    torch.set_num_threads(1)
    data = read_dataset(sample_path())
    ens = load_checkpoint(default_checkpoint_path("monthly"))
    ens.calibration = None
    f, z = daily_embeddings(ens, data)
    novelty = training_novelty(ens, data)(z)
    assert np.isfinite(novelty).all() and novelty.shape == f["gpp"].shape
    npz = tmp_path / "cv_predictions.npz"
    fields = {f"tamrl/{k}": f[k] for k in ("gpp", "reco", "nee", "gpp_std", "reco_std", "nee_std")}
    np.savez(npz, site=data.sites, fold=np.arange(data.n_sites) % 3, **fields, **{"tamrl/novelty": novelty})
    out, report, page = tmp_path / "site.npz", tmp_path / "report.json", tmp_path / "report.md"
    assert _script().main([str(npz), str(sample_path()), str(default_checkpoint_path("monthly")), "--out", str(out),
                           "--json", str(report), "--markdown", str(page)]) == 0
    r = json.loads(report.read_text())
    assert set(r) == {"global", "site, likelihood", "site"} and "| GPP | site |" in page.read_text()
    for v in ("gpp", "reco", "nee"):
        assert 0.7 <= r["site"][v]["coverage"] <= 0.99 and r["site"][v]["crps"] > 0, (v, r["site"][v])
    cal = load_checkpoint(out)
    assert isinstance(cal.calibration, SiteErrorModel) and "unseen site" in cal.spread_meaning
    assert cal.calibration.novelty.centres.shape == (ens.n_members, data.n_sites, 16)
    p = predict_dataset(cal, data)
    np.testing.assert_array_equal(p["gpp"], f["gpp"])
    sd = {v: f[f"{v}_std"] for v in ("gpp", "reco", "nee")}
    want = cal.calibration.sigma(f["gpp"], f["reco"], sd, novelty, np.asarray(data.drivers["igbp"]))
    np.testing.assert_allclose(p["nee_std"], want["nee"], rtol=1e-6)
