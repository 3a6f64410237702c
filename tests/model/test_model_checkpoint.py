"""Checkpoints: exact round trip, safe loading, clear errors for corrupt or mismatched files, the shipped one."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch
from test_model_core import FIRST, lats, make_ensemble, random_drivers

from tamrl_coupler import sealed
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
    assert h["model"]["derived_inputs"] == ["month", "lat"] and h["format_version"] == 4
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
    sealed.save_npz(tmp_path / "edited.npz", arrays)  # a file sealed anew: the digest inside still tells
    with pytest.raises(CheckpointError, match="do not match the header's sha256"):
        load_checkpoint(tmp_path / "edited.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a tamrl-coupler checkpoint"):
        load_checkpoint(tmp_path / "plain.npz")


def _rewrite_header(src, dst, sign=True, **changes):
    """``src`` with its header changed; ``sign``: with a digest recomputed over the edit (a consistent file whose
    header disagrees with its weights), else the old digest (an edit behind the digest's back)."""
    from tamrl_coupler.model.checkpoint import _digest

    with np.load(src, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(arrays.pop("__meta__").tobytes())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            header[section][field] = value
        else:
            header[key] = value
    if sign:
        header["sha256"] = _digest(arrays, header)
    arrays["__meta__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    sealed.save_npz(dst, arrays)  # sealed anew: what is checked inside the seal is what these tests are about
    return dst


@pytest.mark.parametrize("change", [{"drivers": "reversed"}, {"period": "daily"}, {"n_members": 2},
                                    {"sign_convention": "atmosphere_positive"}])
def test_an_edited_header_is_refused(tmp_path, change):
    """The digest covers the header: the driver order, period, member count or sign convention change the physics
    when edited, so an edit behind the digest's back is refused (format 2 took such files)."""
    path = save_checkpoint(make_ensemble(), tmp_path / "ens.npz")
    header = read_header(path)
    if change.get("drivers") == "reversed":
        change = {"drivers": header["drivers"][::-1]}
    with pytest.raises(CheckpointError, match="do not match the header's sha256"):
        load_checkpoint(_rewrite_header(path, tmp_path / "e.npz", sign=False, **change))


def test_format_2_is_refused_and_can_be_re_signed(tmp_path):
    from tamrl_coupler.model.checkpoint import _digest, upgrade_checkpoint

    path = save_checkpoint(make_ensemble(), tmp_path / "ens.npz")
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(arrays.pop("__meta__").tobytes())
    header.update(format_version=2, sha256=_digest(arrays))  # what format 2 signed: the weights only
    arrays["__meta__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(tmp_path / "v2.npz", **arrays)
    with pytest.raises(CheckpointError, match="format_version 2 is not supported.*upgrade_checkpoint"):
        load_checkpoint(tmp_path / "v2.npz")
    back = load_checkpoint(upgrade_checkpoint(tmp_path / "v2.npz", tmp_path / "v4.npz"))
    assert read_header(tmp_path / "v4.npz")["format_version"] == 4 and back.n_members == 3


def test_every_byte_is_sealed_and_older_formats_need_an_explicit_yes(tmp_path):
    """Format 4 seals the file's every byte: a flip anywhere -- zip entry headers, an .npy header's shape or
    padding, the central directory, the JSON header, the comment -- is refused before anything is parsed. A format-3
    file (no seal) is refused unless the caller allows unverified files; a format-4 file whose seal was cut off, or
    that was relabelled as format 3 and edited, is refused."""
    from tamrl_coupler.model.checkpoint import _digest

    path = save_checkpoint(make_ensemble(), tmp_path / "ens.npz")
    raw = path.read_bytes()
    # a local header's version, flags, time and name; compressed data (an .npy header, weights, the JSON header);
    # the central directory; the comment that holds the seal
    positions = {0, 5, 7, 11, 30, 40, len(raw) // 3, len(raw) // 2, len(raw) - 200, len(raw) - 80, len(raw) - 1,
                 *range(0, len(raw), max(1, len(raw) // 40))}
    for pos in sorted(positions):
        for flip in (0x01, 0x20):
            bad = bytearray(raw)
            bad[pos] ^= flip
            (tmp_path / "flip.npz").write_bytes(bytes(bad))
            with pytest.raises(CheckpointError, match="seal|corrupt"):
                load_checkpoint(tmp_path / "flip.npz")
    # format 3: the same content without a seal
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(arrays.pop("__meta__").tobytes())
    header["format_version"] = 3
    header["sha256"] = _digest(arrays, header)
    arrays["__meta__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez_compressed(tmp_path / "v3.npz", **arrays)
    with pytest.raises(CheckpointError, match="format_version 3 carries no whole-file seal.*--allow-unverified"):
        load_checkpoint(tmp_path / "v3.npz")
    assert load_checkpoint(tmp_path / "v3.npz", allow_unverified=True).n_members == 3
    # an .npy header that declares more than its entry holds: refused before allocating, even when allowed
    np.savez_compressed(tmp_path / "v3big.npz", **arrays)
    with zipfile.ZipFile(tmp_path / "v3big.npz", "a") as zf, zf.open("member0.extra.npy", "w") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": (10**10,)})
        fh.write(b"\0" * 8)  # 80 GB declared, 8 bytes held (a consistent CRC: only the header lies)
    with pytest.raises(CheckpointError, match=r"declares shape \(10000000000,\)"):
        load_checkpoint(tmp_path / "v3big.npz", allow_unverified=True)
    # the seal cut off a format-4 file
    (tmp_path / "cut.npz").write_bytes(raw[:-64] + b"0" * 64)
    with pytest.raises(CheckpointError, match="seal"):
        load_checkpoint(tmp_path / "cut.npz")
    nosealfour = {**arrays}
    h4 = {**header, "format_version": 4}
    h4["sha256"] = _digest(arrays, h4)
    nosealfour["__meta__"] = np.frombuffer(json.dumps(h4).encode(), dtype=np.uint8)
    np.savez_compressed(tmp_path / "v4noseal.npz", **nosealfour)
    with pytest.raises(CheckpointError, match="has none"):
        load_checkpoint(tmp_path / "v4noseal.npz", allow_unverified=True)


def test_zero_members_and_huge_header_dimensions_fail_before_allocating(tmp_path):
    path = save_checkpoint(make_ensemble(), tmp_path / "ens.npz")
    with pytest.raises(CheckpointError, match="says 0 member"):
        load_checkpoint(_rewrite_header(path, tmp_path / "z.npz", n_members=0))
    # a hidden size of 10**6 would ask for terabytes; the shapes are compared on the meta device first
    with pytest.raises(CheckpointError, match="the model config implies"):
        load_checkpoint(_rewrite_header(path, tmp_path / "big.npz", model__hidden=1_000_000))


def test_mismatched_checkpoints_fail_clearly(tmp_path):
    path = save_checkpoint(make_ensemble(), tmp_path / "ens.npz")
    with pytest.raises(CheckpointError, match=r"weight 'member0.in_proj.weight' has shape \(16, 36\), the model "
                                              r"config implies \(24, 36\)"):
        load_checkpoint(_rewrite_header(path, tmp_path / "h.npz", model__hidden=24))
    with pytest.raises(CheckpointError, match="format_version 99 is not supported"):
        load_checkpoint(_rewrite_header(path, tmp_path / "v.npz", format_version=99))
    with pytest.raises(CheckpointError, match="header says 4 member.*holds weights for 3"):
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


def test_checkpoints_are_selected_by_name_or_path(tmp_path):
    from tamrl_coupler.model.checkpoint import CHECKPOINT_NAMES, resolve_checkpoint

    assert resolve_checkpoint("monthly") == default_checkpoint_path() == resolve_checkpoint(None)
    assert resolve_checkpoint("monthly").name == CHECKPOINT_NAMES["monthly"]
    assert load_checkpoint("monthly").meta.period == "monthly"
    path = save_checkpoint(make_ensemble(), tmp_path / "mine.npz")
    assert resolve_checkpoint("mine.npz", base=tmp_path) == path  # a config's relative path
    assert load_checkpoint(str(path)).n_members == make_ensemble().n_members
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint("weekly")  # not a name: a path, and there is no such file
