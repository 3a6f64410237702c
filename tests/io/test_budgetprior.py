"""The budget prior file (io/budgetprior.py): written packed, read back to 0.001 gC m-2 d-1, looked up at the
nearest 1-degree cell, nothing further than MAX_DISTANCE_KM; 'auto', 'none' and a missing file."""

from __future__ import annotations

import numpy as np
import pytest

from tamrl_coupler.errors import InputError
from tamrl_coupler.io.budgetprior import (
    prior_path_for,
    read_budget_prior,
    resolve_prior,
    write_budget_prior,
)


def test_round_trip_and_lookup(tmp_path):
    index = np.array([130 * 360 + 10, 90 * 360 + 200])  # (40.5N, 10.5E) and (0.5N, 200.5E)
    rng = np.random.default_rng(0)
    g, r = rng.uniform(0, 12, (12, 2)), rng.uniform(0, 9, (12, 2))
    ckpt = tmp_path / "model.npz"
    path = write_budget_prior(prior_path_for(ckpt), index, g, r, "abc", {"source": "test"})
    assert path.name == "model_budget_prior.nc"
    p = read_budget_prior(path)
    assert np.abs(p.gpp - g).max() <= 0.0005 + 1e-12 and np.abs(p.reco - r).max() <= 0.0005 + 1e-12
    assert p.lat.tolist() == [40.5, 0.5] and p.lon.tolist() == [10.5, 200.5]
    gg, rr, far = p.for_cells(np.array([41.2, 0.0, -60.0]), np.array([9.9, 200.0, 10.0]))
    assert far == 1 and np.isnan(gg[2]).all()
    assert np.allclose(gg[0], p.gpp[:, 0]) and np.allclose(rr[1], p.reco[:, 1])
    assert resolve_prior("auto", ckpt).fingerprint == "abc"
    assert resolve_prior("none", ckpt) is None
    assert resolve_prior("auto", tmp_path / "other.npz") is None
    with pytest.raises(InputError, match="does not exist"):
        resolve_prior("missing.nc", ckpt, tmp_path)


@pytest.mark.parametrize("name", ["tamrl_daily.npz", "tamrl_fluxval_monthly.npz"])
def test_shipped_budget_prior_belongs_to_its_shipped_checkpoint(name):
    """A shipped checkpoint whose network changes (retrained, or its model config written differently) must ship a
    budget prior made with it: a stale one is used but says 'made with ANOTHER checkpoint' in every file."""
    from tamrl_coupler.model.checkpoint import ensemble_fingerprint, load_checkpoint
    from tamrl_coupler.settings.paths import package_root

    checkpoint = package_root() / "checkpoints" / name
    prior = read_budget_prior(prior_path_for(checkpoint))
    assert prior.fingerprint == ensemble_fingerprint(load_checkpoint(checkpoint)), \
        f"{prior.path.name} was made with another network than {name}: remake it (tamrl-coupler testbed --write-prior)"
