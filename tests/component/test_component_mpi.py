"""The coupled run under `mpiexec -n 1/2/3`: identical outputs, exact restart across a period end and a model
evaluation boundary, the balance identity on every cell and step, global totals conserved across the model -> host
regrid, CF compliance."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import yaml
from conftest import require_tools

from tamrl_coupler.io.cfcheck import cfchecks

REPO = Path(__file__).resolve().parents[2]
FIELDS = ("gpp", "reco", "nee", "gpp_spread", "reco_spread", "nee_spread")
pytestmark = pytest.mark.mpi


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _mpiexec(n: int, args: list[str], timeout: int = 400) -> subprocess.CompletedProcess:
    require_tools("mpiexec")
    cmd = ["mpiexec", "-n", str(n), sys.executable, *args]
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=timeout, cwd=REPO)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}"
    return res


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    """The demo, 3-hourly, 8 steps around the end of January (the LSTM state is committed at step 3), the ensemble
    evaluated every 6 hours: at steps 0 (no estimate yet), 1, 3 (period end), 4 (new period), 5 and 7; steps 2 and 6
    reuse the period estimate."""
    d = tmp_path_factory.mktemp("cfg")
    cfg = yaml.safe_load((REPO / "configs" / "run" / "demo.yaml").read_text())
    cfg.update(start="2015-01-31T12:00:00", end="2015-02-01T12:00:00")
    cfg["model"]["update_interval"] = 21600
    cfg["regrid"]["cache_dir"] = str(d / "weights")
    cfg["output"]["map"] = False
    path = d / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _read(path: Path) -> dict[str, np.ndarray]:
    with netCDF4.Dataset(path) as ds:
        out = {f: np.ma.filled(ds[f][:].astype(np.float64), np.nan) for f in FIELDS}
        out["time_bnds"] = np.asarray(ds["time_bnds"][:])
        out["landfrac"] = np.asarray(ds["landfrac"][:])
    return out


def _run(n: int, config: Path, out: Path, steps: int | None = None, restart: Path | None = None) -> None:
    args = ["-m", "tamrl_coupler", "run", str(config), "--output", str(out), "--quiet"]
    if steps is not None:
        args += ["--steps", str(steps)]
    if restart is not None:
        args += ["--restart", str(restart)]
    _mpiexec(n, args)


def test_ranks_identical_restart_exact_balance_and_cf(config, tmp_path):
    runs = {}
    for n in (1, 2, 3):
        _run(n, config, tmp_path / f"n{n}")
        runs[n] = _read(tmp_path / f"n{n}" / "tamrl_fluxes_20150131T120000.nc")
    ref = runs[1]
    assert ref["gpp"].shape[0] == 8 and np.isfinite(ref["gpp"]).sum() > 1000
    for n in (2, 3):
        for f in FIELDS:
            assert np.array_equal(runs[n][f], ref[f], equal_nan=True), f"{f} differs between 1 and {n} ranks"
    with netCDF4.Dataset(tmp_path / "n1" / "tamrl_fluxes_restart_20150201T120000.nc") as ds:
        assert int(ds["scalar_n_evaluations"][...]) == 6  # steps 2 and 6 reused the estimate
    # 2 + 6 steps == 8, bit for bit: the restart (after step 1's evaluation) carries the period estimate that step 2
    # reuses, then step 3 evaluates and commits the state at the month end, on another number of ranks
    _run(2, config, tmp_path / "seg", steps=2)
    restart = tmp_path / "seg" / "tamrl_fluxes_restart_20150131T180000.nc"
    assert restart.exists()
    _run(3, config, tmp_path / "seg", restart=restart)
    a = _read(tmp_path / "seg" / "tamrl_fluxes_20150131T120000.nc")
    b = _read(tmp_path / "seg" / "tamrl_fluxes_20150131T180000.nc")
    for f in (*FIELDS, "time_bnds"):
        assert np.array_equal(np.concatenate([a[f], b[f]]), ref[f], equal_nan=True), f"restart changed {f}"
    # the balance identity on every host cell and every step, exactly
    land = ref["landfrac"] > 0
    assert np.array_equal(ref["nee"][:, land], ref["gpp"][:, land] - ref["reco"][:, land])
    assert np.isfinite(ref["nee"][:, land]).all()
    out = cfchecks(tmp_path / "n2" / "tamrl_fluxes_20150131T120000.nc")
    assert "ERRORS detected: 0" in out, out


CONSERVATION_SCRIPT = r'''
import sys, yaml
from mpi4py import MPI
from tamrl_coupler.host.offline import run_offline
worst = {"gpp": 0.0, "reco": 0.0, "nee": 0.0}
n_checked = [0]
def check(comp, t):
    for k, (model, host) in comp.global_totals().items():
        worst[k] = max(worst[k], abs(host - model) / abs(model))
    n_checked[0] += 1
run_offline(sys.argv[1], sys.argv[2], steps=6, progress=False, on_step=check)
if MPI.COMM_WORLD.Get_rank() == 0:
    print("STEPS", n_checked[0], "WORST", worst["gpp"], worst["reco"], worst["nee"])
'''


@pytest.mark.parametrize("n", [2, 3])
def test_global_totals_conserved_across_model_to_host_regrid(config, tmp_path, n):
    script = tmp_path / "conserve.py"
    script.write_text(CONSERVATION_SCRIPT)
    res = _mpiexec(n, [str(script), str(config), str(tmp_path / "out")])
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("STEPS")][0].split()
    assert int(line[1]) == 6
    worst = [float(v) for v in line[3:6]]
    assert max(worst) <= 1e-12, f"relative global-total error gpp/reco/nee {worst}"
