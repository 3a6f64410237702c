"""The component's model runner: the evaluation plan on the rank's blocks gives the ensemble's own step exactly,
``model.block_size: auto`` and ``device.cuda_graphs`` on a CPU, config errors. Self-contained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from mpi4py import MPI

from tamrl_coupler.settings import ConfigError
from tamrl_coupler.settings.run import load_run_config

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "tamrl_coupler" / "sample_data" / "demo_forcing.nc"


def component(tmp_path: Path, model: dict, device: dict):
    from tamrl_coupler.component import CouplingComponent, HostCells
    from tamrl_coupler.io.hostgrid import read_host_grid

    cfg = yaml.safe_load((REPO / "configs" / "run" / "demo.yaml").read_text())
    cfg["regrid"]["cache_dir"] = str(tmp_path / "weights")
    cfg["model"].update(model)
    cfg["device"] = {**(cfg.get("device") or {}), **device}
    cfg = load_run_config(cfg)
    cfg.base_dir = str(REPO / "configs" / "run")
    host = read_host_grid(DEMO)
    cells = HostCells(np.arange(host.size), host.lat, host.lon, host.area, host.landfrac)
    return CouplingComponent(cfg, MPI.COMM_WORLD, cells)


def test_runner_estimate_is_the_ensemble_step_and_auto_blocks_on_cpu(tmp_path):
    torch.set_num_threads(1)
    comp = component(tmp_path, {"block_size": "auto"}, {"kind": "cpu", "cuda_graphs": True})
    geo, ev = comp.geometry, comp.model_stage
    assert geo.decomp.block_size == 256 and ev.runner.graphed is None  # graphs are for CUDA devices only
    n = geo.n_model
    assert n > 256  # several blocks
    rng = np.random.default_rng(1)
    ev.x[:] = np.stack([rng.normal(5, 5, n), rng.normal(15, 5, n), rng.uniform(0, 25, n), rng.gamma(2, 4, n),
                        rng.gamma(1, 2, n)] + [np.full(n, np.nan)] * (ev.x.shape[1] - 5), axis=1)
    before = ev.state.to_numpy()
    ref, ref_next = comp.ens.step(torch.from_numpy(ev.x), comp.ens.init_state(n, "2015-01", geo.model_lat))
    ev._run_model(commit=False)
    for name in ("gpp", "reco", "gpp_std", "reco_std", "nee_std"):
        assert np.array_equal(ev.estimate[name], getattr(ref, name).numpy()), name
        assert np.shares_memory(ev.estimate[name], ev.runner.estimate)  # the runner writes them in place
    for k in ("window", "h", "c", "period"):  # not committed: only the embedding cache changed
        np.testing.assert_array_equal(ev.state.to_numpy()[k], before[k])
    ev._run_model(commit=True)  # the period's end: the state advances as the pure step says
    for k in ("window", "h", "c", "period"):
        np.testing.assert_array_equal(ev.state.to_numpy()[k], ref_next.to_numpy()[k])


def test_block_size_config_errors():
    base = {"reference_date": "2015-01-01", "start": "2015-01-01", "end": "2015-01-02", "coupling_step": 10800,
            "host": {"grid": "r90x45"}}
    assert load_run_config(base).model.block_size == "auto"
    with pytest.raises(ConfigError, match="model.block_size"):
        load_run_config({**base, "model": {"block_size": "fast"}})
    with pytest.raises(ConfigError, match="model.block_size"):
        load_run_config({**base, "model": {"block_size": 0}})
