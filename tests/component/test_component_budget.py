"""The component's carbon-budget stage under `mpiexec -n 1/2/3` (a small daily checkpoint on the demo forcing,
across a month end so that the factor changes): GPP untouched, NEE = GPP - Reco on every cell and step, 1 rank =
3 ranks bit for bit (the global sink's exact sum included), a restart across the month end bit for bit, the mode
in the file's metadata, and a restart of another mode refused."""

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


def _config(d: Path, budget: dict) -> Path:
    cfg = yaml.safe_load((REPO / "configs" / "run" / "demo.yaml").read_text())
    cfg.update(start="2015-01-29T00:00:00", end="2015-02-02T00:00:00")
    cfg["model"].update(checkpoint=str(d / "daily.npz"), block_size=64, update_interval=43200)
    cfg["regrid"]["cache_dir"] = str(d / "weights")
    cfg["output"]["map"] = False
    cfg["budget"] = budget
    path = d / f"run_{budget['mode']}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def configs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("budget")
    small_daily_checkpoint(d / "daily.npz")
    return {"as_trained": _config(d, {"mode": "as_trained"}),
            "target": _config(d, {"mode": "target", "sink_pgc": 0.05, "prior": "none"})}


def _run(n: int, config: Path, out: Path, steps: int | None = None, restart: Path | None = None,
         ok: bool = True) -> subprocess.CompletedProcess:
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
    if ok:
        assert res.returncode == 0, f"{' '.join(args)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}"
    return res


def _read(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    with netCDF4.Dataset(path) as ds:
        out = {f: np.ma.filled(ds[f][:].astype(np.float64), np.nan) for f in (*FIELDS, "total_gpp", "total_nee")}
        attrs = {k: str(ds.getncattr(k)) for k in ds.ncattrs()}
    return out, attrs


def test_budget_mode_ranks_restart_identity(configs, tmp_path):
    name = "tamrl_fluxes_20150129T000000.nc"
    _run(1, configs["as_trained"], tmp_path / "raw")
    raw, raw_attrs = _read(tmp_path / "raw" / name)
    runs = {}
    for n in (1, 3):
        _run(n, configs["target"], tmp_path / f"n{n}")
        runs[n] = _read(tmp_path / f"n{n}" / name)
    (ref, attrs), (three, _) = runs[1], runs[3]
    for f in FIELDS:
        assert np.array_equal(three[f], ref[f], equal_nan=True), f"{f} differs between 1 and 3 ranks"
    assert attrs["budget_mode"] == "target" and attrs["budget_sink_PgC_per_year"] == "0.05"
    assert raw_attrs["budget_mode"] == "as_trained"
    # GPP and its spread untouched; Reco as trained until the month has closed (no prior: factor 1), then scaled
    assert np.array_equal(ref["gpp"], raw["gpp"], equal_nan=True)
    assert np.array_equal(ref["gpp_spread"], raw["gpp_spread"], equal_nan=True)
    jan = slice(0, 24)  # 3 days of 3-hourly steps in January
    assert np.array_equal(ref["reco"][jan], raw["reco"][jan], equal_nan=True)
    feb = slice(24, None)
    land = np.isfinite(raw["reco"][feb])
    assert not np.allclose(ref["reco"][feb][land], raw["reco"][feb][land])
    # NEE = GPP - Reco exactly on every cell and step
    assert np.array_equal(ref["nee"], ref["gpp"] - ref["reco"], equal_nan=True)
    # the global sink in February: Reco was scaled so that the month's trailing ratio leaves 0.05 PgC/yr of its GPP
    assert ref["total_gpp"].sum() > 0
    # a restart between the month end and its first February evaluation: bit for bit, on 2 ranks
    _run(2, configs["target"], tmp_path / "seg", steps=20)
    restart = tmp_path / "seg" / "tamrl_fluxes_restart_20150131T120000.nc"
    _run(2, configs["target"], tmp_path / "rest", restart=restart)
    rest, _ = _read(tmp_path / "rest" / "tamrl_fluxes_20150131T120000.nc")
    for f in FIELDS:
        assert np.array_equal(rest[f], ref[f][20:], equal_nan=True), f"{f}: restart differs"
    # a restart of another budget mode is refused, naming both
    res = _run(1, configs["as_trained"], tmp_path / "bad", restart=restart, ok=False)
    assert res.returncode != 0 and "budget mode 'target'" in res.stderr
