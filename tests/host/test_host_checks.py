"""The offline driver refuses what it would otherwise guess around (a coupling step spanning many forcing records, a
run past its end or its forcing, a restart already past the end) and reports every fill-policy substitution."""

from __future__ import annotations

import shutil
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import yaml
from conftest import DEMO, REPO

from tamrl_coupler.errors import InputError, OutputError
from tamrl_coupler.host.offline import run_offline


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("weights")


def _config(tmp_path: Path, weights: Path, forcing: Path | None = None, **changes) -> Path:
    cfg = yaml.safe_load((REPO / "configs" / "run" / "demo.yaml").read_text())
    cfg.update(start="2015-01-01T00:00:00", end="2015-01-02T00:00:00")
    cfg["regrid"]["cache_dir"] = str(weights)
    cfg["output"]["map"] = False
    if forcing is not None:
        cfg["host"]["grid"] = str(forcing)
        cfg["forcing"]["files"] = [str(forcing)]
    for k, v in changes.items():
        section, _, key = k.partition("__")
        if key:
            cfg[section][key] = v
        else:
            cfg[k] = v
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_time_plans_that_would_be_guessed_around_are_refused(tmp_path, weights):
    """A monthly coupling step on 3-hourly forcing sampled one record per month and ran past `end` and the
    forcing; a restart already at `end` exited 0 writing nothing; an `end` inside a step ran the whole step."""
    with pytest.raises(InputError, match="spans more than one forcing record .* 10800 s"):
        run_offline(_config(tmp_path, weights, coupling_step="period", end="2015-02-01T00:00:00"), tmp_path / "p",
                    progress=False)
    with pytest.raises(InputError, match="runs past end \\(2015-01-01T04:00:00\\)"):
        run_offline(_config(tmp_path, weights, end="2015-01-01T04:00:00"), tmp_path / "e", progress=False)
    with pytest.raises(InputError, match="no forcing record covers 2015-02-05T00:00:00: the files span .* to "
                                         "2015-02-05T00:00:00"):
        run_offline(_config(tmp_path, weights, end="2015-03-01T00:00:00"), tmp_path / "f", progress=False)
    short = _config(tmp_path, weights, end="2015-01-01T06:00:00")
    done = run_offline(short, tmp_path / "r", progress=False)
    assert done.n_steps == 2
    with pytest.raises(InputError, match="the restart continues at 2015-01-01T06:00:00, not before end"):
        run_offline(short, tmp_path / "r2", restart=done.restart_file, progress=False)
    assert not (tmp_path / "r2").exists() or not list((tmp_path / "r2").iterdir())


def test_persisted_and_missing_values_are_counted_and_reported(tmp_path, weights):
    """Every substitution of the fill policy is in the flux file's metadata (and the log); a unit error is not a
    gap: under 'persist' a value out of range is an error (it was frozen at the last valid value for weeks)."""
    forcing = tmp_path / "forcing.nc"
    shutil.copy(DEMO, forcing)
    with netCDF4.Dataset(forcing, "a") as ds:
        ds.set_auto_mask(False)
        land = np.flatnonzero(np.asarray(ds["landfrac"][:]).ravel() > 0)
        row = np.asarray(ds["tas"][1]).ravel()
        row[land[:3]] = np.nan  # three gaps at the second record
        ds["tas"][1] = row.reshape(ds["tas"].shape[1:])
    res = run_offline(_config(tmp_path, weights, forcing, forcing__fill_policy="persist"), tmp_path / "out",
                      steps=3, progress=False)
    with netCDF4.Dataset(res.flux_file) as ds:
        assert ds.getncattr("fill_policy") == "persist"
        assert "tas 3" in ds.getncattr("forcing_substitutions"), ds.getncattr("forcing_substitutions")
        assert np.isfinite(ds["gpp"][:].compressed()).all()
    with netCDF4.Dataset(forcing, "a") as ds:
        ds.set_auto_mask(False)
        row = np.asarray(ds["tas"][2]).ravel()
        row[land[5]] = 15.0  # degC where K is declared: a unit error, not a gap
        ds["tas"][2] = row.reshape(ds["tas"].shape[1:])
    with pytest.raises(InputError, match="15 K, outside the physical range .* degC was given where K is declared"):
        run_offline(_config(tmp_path, weights, forcing, forcing__fill_policy="persist"), tmp_path / "out2", steps=3,
                    progress=False)


def test_an_output_directory_that_is_a_file_is_an_output_error(tmp_path, weights):
    (tmp_path / "out").write_text("a file, not a directory")
    with pytest.raises(OutputError, match="output directory .*out is a file"):
        run_offline(_config(tmp_path, weights), tmp_path / "out", progress=False)
