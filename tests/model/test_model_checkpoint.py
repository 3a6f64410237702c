"""Checkpoints: exact round trip, safe loading, clear errors for corrupt or mismatched files, the shipped one."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch
from test_model_core import FIRST, lats, make_ensemble, random_drivers

from tamrl_coupler.errors import CheckpointError
from tamrl_coupler.model import default_checkpoint_path, load_checkpoint, read_header, save_checkpoint

torch.set_num_threads(1)


def test_round_trip_is_exact_and_self_describing(tmp_path):
    ens = make_ensemble(nee_mode="free", convention="atmosphere_positive")
    path = save_checkpoint(ens, tmp_path / "ens.npz")
    back = load_checkpoint(path)
    x = torch.from_numpy(random_drivers(5, 16))
    kw = {"first_period": FIRST, "lat": lats(5)}
    a, b = ens.predict_sequence(x, **kw), back.predict_sequence(x, **kw)
    for k in ("gpp", "reco", "nee", "nee_std", "nee_free"):
        assert torch.equal(getattr(a, k), getattr(b, k)), k
    h = read_header(path)
    assert h["sign_convention"] == "atmosphere_positive" and h["nee_formula"] == "NEE = Reco - GPP"
    assert [d["name"] for d in h["drivers"]][:5] == ["tmin", "tmax", "swdown", "vpd", "precip"]
    assert {d["name"]: d["units"] for d in h["drivers"]}["swdown"] == "MJ m-2 d-1"
    assert h["period"] == "monthly" and h["window"] == 6 and h["n_members"] == 3
    assert len(h["normalisation"]["mean"]) == 8
    assert h["model"]["derived_inputs"] == ["month", "lat"] and h["format_version"] == 2
    with np.load(path, allow_pickle=False) as npz:  # plain arrays only: loads without pickle
        assert all(npz[k].dtype != object for k in npz.files)


def test_corrupt_checkpoints_fail_clearly(tmp_path):
    path = save_checkpoint(make_ensemble(), tmp_path / "ens.npz")
    raw = path.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="trunc.npz is corrupt"):
        load_checkpoint(tmp_path / "trunc.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.npz is corrupt"):
        load_checkpoint(tmp_path / "junk.npz")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing.npz")
    # a weight changed behind the header's back
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["member1.head.bias"] = arrays["member1.head.bias"] + 1e-3
    np.savez(tmp_path / "edited.npz", **arrays)
    with pytest.raises(CheckpointError, match="do not match the header's sha256"):
        load_checkpoint(tmp_path / "edited.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a tamrl-coupler checkpoint"):
        load_checkpoint(tmp_path / "plain.npz")


def _rewrite_header(src, dst, **changes):
    with np.load(src, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(arrays["__meta__"].tobytes())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            header[section][field] = value
        else:
            header[key] = value
    arrays["__meta__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(dst, **arrays)
    return dst


def test_mismatched_checkpoints_fail_clearly(tmp_path):
    path = save_checkpoint(make_ensemble(), tmp_path / "ens.npz")
    with pytest.raises(CheckpointError, match=r"weight 'member0.in_proj.weight' has shape \(16, 36\), the model "
                                              r"config implies \(24, 36\)"):
        load_checkpoint(_rewrite_header(path, tmp_path / "h.npz", model__hidden=24))
    with pytest.raises(CheckpointError, match="format_version 99 is not supported"):
        load_checkpoint(_rewrite_header(path, tmp_path / "v.npz", format_version=99))
    with pytest.raises(CheckpointError, match="weights of member 3 are missing"):
        load_checkpoint(_rewrite_header(path, tmp_path / "m.npz", n_members=4))
    with pytest.raises(CheckpointError, match="trained for period 'monthly', but 'daily' was requested"):
        load_checkpoint(path, expect_period="daily")
    with pytest.raises(CheckpointError, match="header is incomplete or invalid"):
        load_checkpoint(_rewrite_header(path, tmp_path / "k.npz", model__kind="transformer"))


def test_shipped_checkpoint_loads_and_runs_on_minimal_drivers():
    path = default_checkpoint_path()
    assert path.exists(), "the package must ship a pretrained ensemble"
    assert path.stat().st_size < 2_000_000
    ens = load_checkpoint(None)
    assert ens.meta.period == "monthly" and ens.meta.sign_convention.value == "uptake_positive"
    assert [d.name for d in ens.meta.drivers if d.required] == ["tmin", "tmax", "swdown", "vpd", "precip"]
    x = torch.from_numpy(random_drivers(5, 24))
    kw = {"first_period": FIRST, "lat": lats(5)}
    full = ens.predict_sequence(x, **kw)
    x[..., 5:] = float("nan")
    minimal = ens.predict_sequence(x, **kw)
    assert torch.equal(minimal.nee, minimal.gpp - minimal.reco)
    assert bool(torch.isfinite(minimal.gpp).all()) and bool((minimal.gpp >= 0).all())
    assert not torch.equal(full.gpp, minimal.gpp), "optional drivers, when present, must be used"
    assert float(full.gpp.max()) < 40.0  # physically plausible monthly-mean GPP, gC m-2 d-1


def test_checkpoint_is_a_zip_of_plain_arrays():
    with zipfile.ZipFile(default_checkpoint_path()) as z:
        assert "__meta__.npy" in z.namelist()
