"""What must never give a silently wrong flux: a missing forcing value under fill_policy 'missing', a step retried
after a late failure, a restart that is damaged, edited or from another run, nonsense times."""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pytest
import yaml
from mpi4py import MPI

from tamrl_coupler import sealed
from tamrl_coupler.errors import InputError
from tamrl_coupler.settings.run import load_run_config

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "tamrl_coupler" / "sample_data" / "demo_forcing.nc"
FIELDS = ("tas", "huss", "ps", "rsds", "pr")


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("weights")


def _component(weights: Path, restart=None, ensemble=None, allow_unverified=False, **changes):
    from tamrl_coupler.component import CouplingComponent, HostCells
    from tamrl_coupler.io.hostgrid import read_host_grid

    cfg = yaml.safe_load((REPO / "configs" / "run" / "demo.yaml").read_text())
    cfg["regrid"]["cache_dir"] = str(weights)
    cfg["output"]["map"] = False
    for k, v in changes.items():
        section, _, key = k.partition("__")
        if key:
            cfg[section][key] = v
        else:
            cfg[k] = v
    cfg = load_run_config(cfg)
    cfg.base_dir = str(REPO / "configs" / "run")
    host = read_host_grid(DEMO)
    cells = HostCells(np.arange(host.size), host.lat, host.lon, host.area, host.landfrac)
    return CouplingComponent(cfg, MPI.COMM_WORLD, cells, restart=restart, ensemble=ensemble,
                             allow_unverified=allow_unverified), host


class Host:
    """A minimal host: the demo forcing read into registered arrays, every export registered."""

    def __init__(self, comp, host):
        from tamrl_coupler.io.forcing import ForcingReader

        self.comp, self.host = comp, host
        self.reader = ForcingReader([DEMO], {}, list(FIELDS))
        self.imports = {f: np.zeros(host.size) for f in FIELDS}
        self.exports = {f: np.zeros(host.size) for f in comp.export_names}
        for f, b in self.imports.items():
            comp.register_import(f, b)
        for f, b in self.exports.items():
            comp.register_export(f, b)

    def load(self, t: int) -> None:
        rec = self.reader.record_for(self.comp.clock.datetime(t))
        for f, b in self.imports.items():
            b[:] = self.reader.read(f, rec)

    def step(self, t: int, dt: int) -> dict[str, np.ndarray]:
        self.load(t)
        self.comp.run_step(t, dt)
        return {f: v.copy() for f, v in self.exports.items()}


def test_a_missing_value_never_poisons_the_period(weights):
    """fill_policy 'missing', daily steps from 20 January to the month's end, shortwave missing on one land cell on
    the 22nd: every exported flux stays finite, no cell's GPP becomes 0 (before: a NaN poisoned the downscaler's
    period sums and the NaN fluxes were exported as 0 on 6 host cells for the rest of the month), and the total over
    the days run on every model cell is still exactly the model's prediction."""
    runs, substituted = {}, {}
    for label in ("missing", "clean"):
        # a month's total: the monthly model; the demo's 00 UTC record taken as a day's mean shortwave is above
        # the day's insolation in the tropics (what the plausibility checks refuse): not what this test is about
        comp, host = _component(weights, coupling_step=86400, forcing__fill_policy="missing",
                                model__checkpoint="monthly", forcing__check_plausibility=False)
        h = Host(comp, host)
        # a tropical land cell where 00 UTC (the record read for a daily step) is daytime: its shortwave matters
        cell = int(np.flatnonzero((host.landfrac > 0) & (np.abs(host.lat) < 30) & (host.lon > 130))[0])
        emitted = np.zeros((2, comp.geometry.n_model))
        gpp = []
        for day in range(19, 31):
            h.load(day * 86400)
            if label == "missing" and day == 21:
                h.imports["rsds"][cell] = np.nan
            comp.run_step(day * 86400, 86400)
            rows = comp.model_stage.step_rows
            emitted += np.vstack([rows["gpp"], rows["reco"]])
            gpp.append(h.exports["gpp"].copy())
            assert all(np.isfinite(v).all() for v in h.exports.values()), (label, day)
        predicted = np.vstack([comp.model_stage.estimate["gpp"], comp.model_stage.estimate["reco"]]) * 12
        np.testing.assert_allclose(emitted, predicted, rtol=1e-13, atol=1e-13)
        runs[label] = np.array(gpp)
        substituted[label] = comp
    land = host.landfrac > 0
    zeroed = (runs["missing"][:, land] == 0) & (runs["clean"][:, land] != 0)
    assert not zeroed.any(), f"{int(zeroed.any(axis=0).sum())} land cells lost their GPP"
    changed = np.abs(runs["missing"][2:, land] - runs["clean"][2:, land]).max(axis=0) > 0
    assert 0 < changed.sum() < 40  # the missing value changes its neighbourhood only
    assert [substituted[k].forcing_substitutions() for k in ("missing", "clean")] == [{"rsds": 1}, {}]  # counted


def test_a_step_that_fails_late_can_be_retried_exactly(weights):
    """A read-only export makes step 2 fail; the step changed nothing, so retried (the array made writable) it gives,
    and the steps after it give, exactly the fluxes of an uninterrupted run (before: the drivers had been added
    before the failure, and the retry added them again)."""
    ref_comp, host = _component(weights, model__update_interval=21600)
    ref = Host(ref_comp, host)
    expected = [ref.step(k * 10800, 10800) for k in range(5)]
    comp, _ = _component(weights, model__update_interval=21600)
    h = Host(comp, host)
    got = [h.step(k * 10800, 10800) for k in range(2)]
    h.exports["gpp"].flags.writeable = False
    with pytest.raises(InputError, match="export field 'gpp' on rank 0: the registered array is read-only"):
        h.step(2 * 10800, 10800)
    h.exports["gpp"].flags.writeable = True
    got += [h.step(k * 10800, 10800) for k in range(2, 5)]
    for k, (a, b) in enumerate(zip(got, expected, strict=True)):
        for f in a:
            assert np.array_equal(a[f], b[f]), (k, f)


@pytest.mark.parametrize("t,dt", [(float("nan"), 10800), (0, float("nan")), (1e300, 10800), (0, 1e300),
                                  (float("inf"), 10800), ("noon", 10800), (0, -10800)])
def test_nonsense_times_are_input_errors(weights, t, dt):
    comp, host = _component(weights)
    Host(comp, host).load(0)
    with pytest.raises(InputError):
        comp.run_step(t, dt)
    comp.run_step(0, 10800)  # nothing was changed by the failed call


# ------------------------------------------------------------------------------------------------- restarts
@pytest.fixture(scope="module")
def restart(weights, tmp_path_factory) -> Path:
    comp, host = _component(weights)
    h = Host(comp, host)
    for k in range(2):
        h.step(k * 10800, 10800)
    return comp.write_restart(tmp_path_factory.mktemp("restart") / "r.nc")


def _rewrite(src: Path, dst: Path, change=None, drop=(), sign=True, dims=None, seal=True, extra=None,
             version=None) -> Path:
    """A copy of a restart with arrays changed (``change(name, values) -> values``) or dropped, dimensions resized
    (``dims``: only for arrays left unwritten), and, with ``sign``, a digest recomputed over the change (a file
    consistent in itself; without, an edit behind the digest's back); with ``seal``, sealed anew (so that what is
    checked inside the seal is reached); ``extra``: name -> size of an array declared but never written;
    ``version``: the format version it claims."""
    from tamrl_coupler.io.restart import DIGEST_ATTR, content_digest

    with netCDF4.Dataset(src) as s:
        s.set_auto_mask(False)
        attrs = {k: s.getncattr(k) for k in s.ncattrs()}
        values = {n: np.asarray(v[...]) for n, v in s.variables.items() if n not in drop}
        var_dims = {n: v.dimensions for n, v in s.variables.items()}
        sizes = {d: len(x) for d, x in s.dimensions.items()}
    if version is not None:
        attrs["restart_format_version"] = str(version)
    if change:
        values = {n: change(n, v) for n, v in values.items()}
    sizes.update(dims or {})
    if sign:
        scalars = {n[len("scalar_"):]: float(v) for n, v in values.items() if n.startswith("scalar_")}
        arrays = {n: v for n, v in values.items() if not n.startswith("scalar_")}
        attrs[DIGEST_ATTR] = content_digest(scalars, arrays, attrs)
    with netCDF4.Dataset(dst, "w") as d:
        d.setncatts(attrs)
        for name, n in sizes.items():
            d.createDimension(name, n)
        for name, v in values.items():
            var = d.createVariable(name, v.dtype, var_dims[name])
            if all(sizes[x] == n for x, n in zip(var_dims[name], v.shape, strict=True)):
                var[...] = v
        for name, n in (extra or {}).items():
            d.createDimension(f"{name}_dim", n)
            d.createVariable(name, "f8", (f"{name}_dim",))
    if seal:
        sealed.append_seal(dst)
    return dst


def _flip(name, v):
    if name == "state_h":
        v = v.copy()
        v.reshape(-1)[123] = np.nextafter(v.reshape(-1)[123], np.float32(np.inf))  # the smallest edit there is
    return v


def _nan(name, v):
    if name == "state_c":
        v = v.copy()
        v[7, 0, 0] = np.nan
    return v


@pytest.mark.parametrize("case,kwargs,message", [
    ("edited", {"change": _flip, "sign": False}, "does not match its content_sha256"),
    ("nan_state", {"change": _nan}, "array 'state_c' holds NaN \\(first at cell 7\\)"),
    ("missing_array", {"drop": ("state_c",)}, "array 'state_c' is missing"),
    ("huge_dimension", {"dims": {"member": 10**9}, "sign": False}, "dimension 'member' is 1000000000, this run needs"),
])
def test_damaged_restarts_are_refused_before_use(weights, restart, tmp_path, case, kwargs, message):
    bad = _rewrite(restart, tmp_path / f"{case}.nc", **kwargs)
    with pytest.raises(InputError, match=message):
        _component(weights, restart=bad)


def test_every_byte_of_a_restart_is_sealed_and_older_formats_need_an_explicit_yes(weights, restart, tmp_path):
    """A flipped byte anywhere -- the HDF5 superblock, attributes, compressed arrays, the very last bytes -- is
    refused before the NetCDF library reads the file; a seal cut off, or a sealed file relabelled as format 4 (which
    had no seal) is refused unless unverified restarts are allowed explicitly, and then its content digest is still
    checked; a file that declares arrays larger than the machine's memory is refused before anything is read."""
    raw = restart.read_bytes()
    for pos in sorted({0, 9, 100, 1000, len(raw) // 2, len(raw) - 100, len(raw) - 70, len(raw) - 2,
                       *range(0, len(raw), len(raw) // 25)}):
        bad = bytearray(raw)
        bad[pos] ^= 0x04
        (tmp_path / "flip.nc").write_bytes(bytes(bad))
        with pytest.raises(InputError, match="restart .*flip.nc: .*(seal|none)"):
            _component(weights, restart=tmp_path / "flip.nc")
    (tmp_path / "cut.nc").write_bytes(raw[:-79])  # the seal cut off
    with pytest.raises(InputError, match="format 5 ends with a SHA-256 seal, but this file has none"):
        _component(weights, restart=tmp_path / "cut.nc")
    old = _rewrite(restart, tmp_path / "v4.nc", version=4, seal=False)  # a format-4 file, signed over itself
    with pytest.raises(InputError, match="format version 4, written before restarts were sealed.*--allow-unverif"):
        _component(weights, restart=old)
    assert _component(weights, restart=old, allow_unverified=True)[0].next_time == 2 * 10800
    edited = _rewrite(restart, tmp_path / "v4e.nc", version=4, seal=False, change=_flip, sign=False)
    with pytest.raises(InputError, match="does not match its content_sha256"):
        _component(weights, restart=edited, allow_unverified=True)
    huge = _rewrite(restart, tmp_path / "huge.nc", extra={"budget_sum": 10**13})  # 80 TB declared, none written
    with pytest.raises(InputError, match="restart .*huge.nc declares .* GiB of arrays .*'budget_sum'"):
        _component(weights, restart=huge)


@pytest.mark.parametrize("damage", ["truncated", "bit_flips", "not_netcdf"])
def test_unreadable_restarts_are_input_errors(weights, restart, tmp_path, damage):
    data = bytearray(restart.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "bit_flips":
        for i in range(len(data) // 3, len(data), 1009):
            data[i] ^= 0x10
    else:
        data = bytearray(b"CDF? not a restart")
    bad = tmp_path / f"{damage}.nc"
    bad.write_bytes(bytes(data))
    with pytest.raises(InputError, match=f"{damage}.nc"):
        _component(weights, restart=bad)


def test_a_restart_from_another_network_or_schedule_is_refused(weights, restart):
    import torch

    from tamrl_coupler.model import load_checkpoint

    other = load_checkpoint("daily")  # the demo's
    with torch.no_grad():
        next(other.members[0].parameters()).add_(1e-3)  # another network of the same shape
    with pytest.raises(InputError, match="written by another ensemble"):
        _component(weights, restart=restart, ensemble=other)
    with pytest.raises(InputError, match="written with model.update_interval 86400 s, this run has 21600 s"):
        _component(weights, restart=restart, model__update_interval=21600)
    again, _ = _component(weights, restart=restart)  # the same run continues
    assert again.next_time == 2 * 10800
