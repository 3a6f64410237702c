"""The coupled run with a daily model (the daily TAM-RL through the batched kernels, its month running sums and
slots advanced in place at every day's end, the day + site error model applied to every evaluation) under
`mpiexec -n 1/2/3`: identical outputs on any number of ranks, 2N steps = N + restart + N bit for bit (the restart
inside a month carries its running sums), NEE = GPP - Reco on every cell and step."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import yaml
from conftest import require_tools, small_daily_checkpoint

REPO = Path(__file__).resolve().parents[2]
FIELDS = ("gpp", "reco", "nee", "gpp_spread", "reco_spread", "nee_spread")
pytestmark = pytest.mark.mpi


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    """The demo forcing, 3-hourly, 16 days of January (enough for the month's slot, MIN_DAYS = 15) and the first
    half of February; blocks of 64 model cells, two evaluations a day."""
    d = tmp_path_factory.mktemp("daily")
    cfg = yaml.safe_load((REPO / "configs" / "run" / "demo.yaml").read_text())
    cfg.update(start="2015-01-16T00:00:00", end="2015-02-01T12:00:00")
    cfg["model"].update(checkpoint=str(small_daily_checkpoint(d / "daily.npz")), block_size=64, update_interval=43200)
    cfg["regrid"]["cache_dir"] = str(d / "weights")
    cfg["output"]["map"] = False
    path = d / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(n: int, config: Path, out: Path, steps: int | None = None, restart: Path | None = None) -> None:
    require_tools("mpiexec")
    args = ["mpiexec", "-n", str(n), sys.executable, "-m", "tamrl_coupler", "run", str(config), "--output", str(out),
            "--quiet"]
    if steps is not None:
        args += ["--steps", str(steps)]
    if restart is not None:
        args += ["--restart", str(restart)]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = subprocess.run(args, capture_output=True, text=True, env=env, timeout=400, cwd=REPO)
    assert res.returncode == 0, f"{' '.join(args)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}"


def _read(path: Path) -> dict[str, np.ndarray]:
    with netCDF4.Dataset(path) as ds:
        out = {f: np.ma.filled(ds[f][:].astype(np.float64), np.nan) for f in FIELDS}
        out["time_bnds"] = np.asarray(ds["time_bnds"][:])
        out["landfrac"] = np.asarray(ds["landfrac"][:])
    return out


def test_daily_model_ranks_identical_restart_exact_and_balanced(config, tmp_path):
    runs = {}
    for n in (1, 3):
        _run(n, config, tmp_path / f"n{n}")
        runs[n] = _read(tmp_path / f"n{n}" / "tamrl_fluxes_20150116T000000.nc")
    ref = runs[1]
    assert ref["gpp"].shape[0] == 132 and np.isfinite(ref["gpp"]).sum() > 100_000
    with netCDF4.Dataset(tmp_path / "n1" / "tamrl_fluxes_20150116T000000.nc") as ds:  # the spread says what it is
        meaning = "calibrated predictive standard deviation of the daily flux at an unseen site"
        assert meaning in ds.spread_meaning and ds["nee_spread"].long_name.startswith(meaning)
    for f in FIELDS:
        assert np.array_equal(runs[3][f], ref[f], equal_nan=True), f"{f} differs between 1 and 3 ranks"
    # January's slot was written at its end from 16 days of running sums (the drivers the host sends) and its sums
    # restarted; 1 February is half done (a day is committed at its end)
    with netCDF4.Dataset(tmp_path / "n1" / "tamrl_fluxes_restart_20150201T120000.nc") as ds:
        window, acc_n = np.asarray(ds["state_window"][:]), np.asarray(ds["state_acc_n"][:])
    assert np.isfinite(window[:, 0, 0]).all() and np.isnan(window[:, 1:]).all()
    assert acc_n.max() == 0.0
    # 60 + 72 steps == 132, bit for bit: the restart (23 January, 12:00) carries the month's running sums into
    # another number of ranks, and the month then closes with them
    _run(2, config, tmp_path / "seg", steps=60)
    restart = tmp_path / "seg" / "tamrl_fluxes_restart_20150123T120000.nc"
    with netCDF4.Dataset(restart) as ds:
        assert float(np.asarray(ds["state_acc_n"][:]).max()) == 7.0  # 16..22 January summed
    _run(3, config, tmp_path / "seg", restart=restart)
    a = _read(tmp_path / "seg" / "tamrl_fluxes_20150116T000000.nc")
    b = _read(tmp_path / "seg" / "tamrl_fluxes_20150123T120000.nc")
    for f in (*FIELDS, "time_bnds"):
        assert np.array_equal(np.concatenate([a[f], b[f]]), ref[f], equal_nan=True), f"restart changed {f}"
    land = ref["landfrac"] > 0
    assert np.array_equal(ref["nee"][:, land], ref["gpp"][:, land] - ref["reco"][:, land])
    assert np.isfinite(ref["nee"][:, land]).all()
