"""Property-based fuzzing (hypothesis) of the config loader, the forcing reader and the CouplingComponent API.

Properties: no hang, no exception outside the product's error types (TamrlError), and no silent change: a forcing
file that reads is read exactly, and a component call that fails changes nothing (its state and the fluxes the host
holds are as before the call). Example counts are small so that the suite stays fast; each test still explores
a few hundred malformed inputs in total.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import yaml
from conftest import REPO
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from tamrl_coupler import vocabulary
from tamrl_coupler.errors import TamrlError

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
                derandomize=True)
BASE = {"reference_date": "2015-01-01", "start": "2015-01-01T00:00:00", "end": "2015-01-02T00:00:00",
        "coupling_step": 10800, "host": {"grid": "r72x36"},
        "forcing": {"files": ["f.nc"], "variables": {"tas": "t2m"}, "fill_policy": "error"},
        "model": {"grid": "r90x45", "block_size": 256, "update_interval": 86400},
        "exports": {"unit": "kgC m-2 s-1", "sign_convention": "uptake_positive"},
        "regrid": {"backend": "auto", "cache_dir": None}, "device": {"kind": "cpu", "threads": 1},
        "output": {"prefix": "tamrl_fluxes", "every": 1, "map": False,
                   "prior": {"grid": "host", "frequency": "daily", "prefix": "p"}}}

PLAUSIBLE = [3600, 86400, "period", "persist", "missing", "gC m-2 d-1", "atmosphere_positive", 2, 5, "monthly",
             "3hourly", "r72x36", "forcing", "points", "cuda", "fluxval", 21600, 128, "2015-01-01T12:00:00", True, []]
values = st.sampled_from(PLAUSIBLE) | st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12) | st.sampled_from(["..", "/etc/x", "r90x45", "host", "period", "2015-02-30", "nan", "%"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)


def _paths(d: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for k, v in d.items():
        out.append((*prefix, k))
        if isinstance(v, dict):
            out += _paths(v, (*prefix, k))
    return out


@settings(FUZZ, max_examples=150)
@example([(("output", "prefix"), "../outside", "set")])  # the cases that were accepted before, always tried
@example([(("output", "every"), 0, "set")])
@example([(("end",), "2014-12-31", "set")])
@example([(("output", "prior", "frequency"), "weekly", "set")])
@given(st.lists(st.tuples(st.sampled_from(_paths(BASE)), values, st.sampled_from(["set", "delete", "unknown"])),
                min_size=1, max_size=4))
def test_config_loader_raises_only_config_errors(edits):
    """Any value in any place, keys removed or unknown ones added: a RunConfig or a ConfigError naming the key."""
    import copy

    from tamrl_coupler.settings.run import RunConfig, load_run_config

    data = copy.deepcopy(BASE)
    for path, value, how in edits:
        node = data
        for k in path[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        if how == "set":
            node[path[-1]] = value
        elif how == "delete":
            node.pop(path[-1], None)
        else:
            node[f"{path[-1]}_x"] = value
    try:
        cfg = load_run_config(data)
    except TamrlError:
        event("refused")
        return
    event("loaded")
    assert isinstance(cfg, RunConfig)
    assert cfg.output.every >= 1 and "/" not in cfg.output.prefix and ".." not in cfg.output.prefix
    assert np.datetime64(cfg.end) > np.datetime64(cfg.start)


@settings(FUZZ, max_examples=50)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_config_files_of_any_bytes_are_config_errors(tmp_path_factory, data):
    from tamrl_coupler.settings.run import load_run_config

    path = tmp_path_factory.mktemp("cfg") / "run.yaml"
    path.write_bytes(data)
    with pytest.raises(TamrlError):
        load_run_config(path)


# ------------------------------------------------------------------------------------------------- forcing files
FIELDS = ["tas", "huss", "ps", "rsds", "pr"]
GOOD_UNITS = {"tas": "K", "huss": "kg kg-1", "ps": "Pa", "rsds": "W m-2", "pr": "kg m-2 s-1"}


@st.composite
def forcing_files(draw):
    """A small forcing file description: sound, or with one thing spoiled (its time axis, calendar, time units, a
    variable's unit, dimension names, a missing variable, damaged bytes)."""
    n_t = draw(st.integers(1, 5))
    step = draw(st.sampled_from([3600.0, 10800.0, 86400.0]))
    spec = {"times": [k * step for k in range(n_t)], "step": step, "bounds": draw(st.booleans()),
            "calendar": "proleptic_gregorian", "time_units": "seconds since 2015-01-01",
            "order": draw(st.sampled_from([("lat", "lon"), ("lon", "lat")])), "units": dict(GOOD_UNITS),
            "drop": None, "damage": "none", "cut": draw(st.floats(0.05, 0.95))}
    spoil = draw(st.sampled_from(["none", "none", "none", "times", "calendar", "time_units", "units", "order", "drop",
                                  "damage", "bounds_shift"]))
    if spoil == "times":
        how = draw(st.sampled_from(["shuffle", "duplicate", "nan", "gap"]))
        t = spec["times"]
        if how == "shuffle":
            t.reverse()
        elif how == "duplicate" and n_t > 1:
            t[1] = t[0]
        elif how == "nan":
            t[-1] = math.nan
        elif how == "gap" and n_t > 2:
            t[2] += step
    elif spoil == "calendar":
        spec["calendar"] = draw(st.sampled_from(["standard", "gregorian", "360_day", "noleap", "julian", "x"]))
    elif spoil == "time_units":
        spec["time_units"] = draw(st.sampled_from(["hours since 2015-01-01 00:00:00", "fortnights since 2015",
                                                   "seconds since yesterday", "", "days since 2015-01-01T00:00Z",
                                                   "seconds since 2015-01-01 00:00 -6:00",
                                                   "seconds since 2015-01-01 00:00:00 +05:30",
                                                   "seconds since 2015-01-01 00:00 +99:00",
                                                   "seconds since 2015-01-01 00:00 bogus"]))
    elif spoil == "units":
        field = draw(st.sampled_from(FIELDS))
        spec["units"][field] = draw(st.sampled_from(["degC", "hPa", "mm/day", "furlongs", "", "mol mol-1"]))
    elif spoil == "order":
        spec["order"] = draw(st.sampled_from([("y", "x"), ("lat", "x"), ("lon", "lon2")]))
    elif spoil == "drop":
        spec["drop"] = draw(st.sampled_from(FIELDS))
    elif spoil == "damage":
        spec["damage"] = draw(st.sampled_from(["truncate", "flip"]))
    elif spoil == "bounds_shift":
        spec["bounds"], spec["bounds_shift"] = True, draw(st.sampled_from([-21600.0, 21600.0, 1.5 * step]))
    return spec


def _write_forcing(path: Path, spec: dict, field: np.ndarray) -> None:
    dims = spec["order"]
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", None)
        transposed = dims[0] != "lat"
        ds.createDimension(dims[0], field.shape[1] if transposed else field.shape[0])
        ds.createDimension(dims[1], field.shape[0] if transposed else field.shape[1])
        ds.createDimension("nv", 2)
        t = ds.createVariable("time", "f8", ("time",))
        t.calendar = spec["calendar"]
        if spec["time_units"]:
            t.units = spec["time_units"]
        t[:] = spec["times"]
        if spec["bounds"]:
            t.bounds = "time_bnds"
            tb = np.asarray(spec["times"], dtype=float) + spec.get("bounds_shift", 0.0)
            ds.createVariable("time_bnds", "f8", ("time", "nv"))[:] = np.stack([tb, tb + spec["step"]], 1)
        for f in FIELDS:
            if f == spec["drop"]:
                continue
            v = ds.createVariable(f, "f8", ("time", *dims), fill_value=1e20)
            if spec["units"][f]:
                v.units = spec["units"][f]
            data = field.T if transposed else field
            v[:] = np.broadcast_to(data, (len(spec["times"]), *data.shape))
    raw = bytearray(path.read_bytes())
    if spec["damage"] == "truncate":
        path.write_bytes(bytes(raw[: int(len(raw) * spec["cut"])]))
    elif spec["damage"] == "flip":
        for i in range(int(len(raw) * spec["cut"]), len(raw), 211):
            raw[i] ^= 0x5A
        path.write_bytes(bytes(raw))


@settings(FUZZ, max_examples=60)
@given(forcing_files())
def test_forcing_reader_raises_only_input_errors_and_reads_exactly(tmp_path_factory, spec):
    """Whatever is wrong with the file, an InputError naming it; when it reads, every value is the file's, in the
    host grid's cell order (matched by dimension name), converted by its declared unit."""
    from tamrl_coupler.io.forcing import ForcingReader
    from tamrl_coupler.physics.units import import_conversion

    path = tmp_path_factory.mktemp("forcing") / "f.nc"
    field = 280.0 + np.arange(12.0).reshape(4, 3)
    _write_forcing(path, spec, field)
    try:
        reader = ForcingReader([path], {}, FIELDS, grid_size=12, dims=("lat", "lon"))
        got = {f: [reader.read(f, k) for k in range(reader.times.size)] for f in FIELDS}
        reader.close()
    except TamrlError as exc:
        event(f"refused: {type(exc).__name__}")
        return
    event("read")
    assert not spec.get("bounds_shift"), "a time axis outside its own bounds was read"
    if "+99:00" in spec["time_units"] or "bogus" in spec["time_units"]:
        raise AssertionError(f"time units {spec['time_units']!r} were read")
    if spec["damage"] != "none":  # damage the library did not notice (padding, unused bytes): nothing to compare
        return
    for f in FIELDS:
        conv = import_conversion(f, spec["units"][f] or None, "test")
        for rec in got[f]:
            np.testing.assert_array_equal(rec, conv.apply(field.ravel()))


# ------------------------------------------------------------------------------------------------- the component
@pytest.fixture(scope="module")
def component(tmp_path_factory):
    """One component on the demo's host grid, its five imports and every export registered."""
    from mpi4py import MPI

    from tamrl_coupler.component import CouplingComponent, HostCells
    from tamrl_coupler.io.forcing import ForcingReader
    from tamrl_coupler.io.hostgrid import read_host_grid
    from tamrl_coupler.settings.run import load_run_config

    demo = REPO / "tamrl_coupler" / "sample_data" / "demo_forcing.nc"
    cfg = yaml.safe_load((REPO / "configs" / "run" / "demo.yaml").read_text())
    cfg["regrid"]["cache_dir"] = str(tmp_path_factory.mktemp("weights"))
    cfg["model"]["update_interval"] = 86400
    cfg = load_run_config(cfg)
    cfg.base_dir = str(REPO / "configs" / "run")
    host = read_host_grid(demo)
    comp = CouplingComponent(cfg, MPI.COMM_WORLD,
                             HostCells(np.arange(host.size), host.lat, host.lon, host.area, host.landfrac))
    reader = ForcingReader([demo], {}, FIELDS)
    imports = {f: reader.read(f, 0) for f in FIELDS}
    exports = {f: np.zeros(host.size) for f in comp.export_names}
    for f, a in imports.items():
        comp.register_import(f, a)
    for f, a in exports.items():
        comp.register_export(f, a)
    comp.run_step(0, 10800)
    return comp, imports, exports, host, reader


def _snapshot(comp, exports) -> dict:
    ev = comp.model_stage
    snap = {k: np.array(v, copy=True) for k, (_, v) in ev.state_arrays().items()}
    snap.update({f"import_{k}": np.array(v, copy=True) for k, v in comp.imports.state_arrays().items()})
    snap.update({f"export_{k}": v.copy() for k, v in exports.items()})
    snap["scalars"] = dict(ev.state_scalars())
    snap["clock"] = (comp.next_time, comp.n_steps, comp.broken, dict(comp.imports.substitutions))
    return snap


def _differences(a: dict, b: dict) -> list[str]:
    """The entries of two snapshots that differ (empty when the component was left as it was)."""
    if a.keys() != b.keys():
        return [f"keys {sorted(set(a) ^ set(b))}"]
    out = []
    for k in a:
        if isinstance(a[k], np.ndarray):
            if a[k].shape != b[k].shape or not np.array_equal(a[k], b[k], equal_nan=True):
                out.append(k)
        elif a[k] != b[k]:
            out.append(f"{k}: {a[k]} -> {b[k]}")
    return out


times = st.one_of(st.just("next"), st.sampled_from(["same", "previous", "nan", "inf", "huge", "text", "none"]),
                  st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**20, 10**20))
lengths = st.one_of(st.just(10800), st.sampled_from([3600, 86400, 7000, 0, -10800, math.nan, math.inf, 1e300, "3h",
                                                     None]))
names = st.sampled_from([*FIELDS, "air_temperature", "surface_air_pressure", "Tair", "", "gpp", "nee", "tas ",
                         "lai_x"])
arrays = st.sampled_from(["good", "nan", "inf", "fill", "degC", "short", "int", "2d", "list", "readonly"])


@st.composite
def calls(draw):
    kind = draw(st.sampled_from(["step", "step", "step", "import", "export", "corrupt", "restart"]))
    return kind, draw(times), draw(lengths), draw(names), draw(arrays), draw(st.integers(0, 2159))


def _array(how: str, n: int, base: np.ndarray) -> object:
    a = base.copy()
    if how == "nan":
        a[::97] = np.nan
    elif how == "inf":
        a[::89] = np.inf
    elif how == "fill":
        a[::83] = 1e36
    elif how == "degC":
        a -= 273.15
    elif how == "short":
        return a[:-1]
    elif how == "int":
        with np.errstate(invalid="ignore"):
            return a.astype(np.int64)
    elif how == "2d":
        return a.reshape(-1, 1)
    elif how == "list":
        return a.tolist()
    elif how == "readonly":
        a.flags.writeable = False
    return a


@settings(FUZZ, max_examples=25)
@given(st.lists(calls(), min_size=1, max_size=6))
def test_component_calls_fail_cleanly_and_change_nothing_when_they_fail(component, tmp_path_factory, sequence):
    """Random run_step times and lengths, registrations of any name and array, damaged forcing values, restarts to
    odd places: each call succeeds or raises a TamrlError, and one that raises leaves the component's state and the
    host's flux arrays exactly as they were."""
    comp, imports, exports, host, reader = component
    out_dir = tmp_path_factory.mktemp("restarts")
    for kind, t, dt, name, how, cell in sequence:
        if comp.broken:
            return
        before = _snapshot(comp, exports)
        saved = {f: a.copy() for f, a in imports.items()}
        try:
            if kind == "step":
                nt = comp.next_time
                t = {"next": nt, "same": nt - 10800, "previous": nt - 2 * 10800, "nan": math.nan, "inf": math.inf,
                     "huge": 1e19, "text": "noon", "none": None}.get(t, t) if isinstance(t, str) else t
                if t == nt and comp.next_time is not None:
                    rec = reader.record_for(comp.clock.datetime(nt))
                    for f, a in imports.items():
                        a[:] = reader.read(f, rec)
                comp.run_step(t, dt)
            elif kind == "import":
                comp.register_import(name, _array(how, host.size, imports["tas"]))
            elif kind == "export":
                comp.register_export(name, _array(how, host.size, exports["gpp"]))
            elif kind == "corrupt":
                bad = _array(how, host.size, imports[FIELDS[cell % 5]])
                if isinstance(bad, np.ndarray) and bad.shape == imports[FIELDS[cell % 5]].shape:
                    imports[FIELDS[cell % 5]][:] = bad
                comp.run_step(comp.next_time, 10800)
            else:
                target = {"good": out_dir / "r.nc", "nan": out_dir, "short": out_dir / "missing" / "r.nc"}.get(
                    how, out_dir / f"r_{how}.nc")
                comp.write_restart(target)
            if kind in ("import", "export"):  # it took the array: give the field its host array back
                role = vocabulary.Role.IMPORT if kind == "import" else vocabulary.Role.EXPORT
                short = vocabulary.canonical_name(role, name)
                if kind == "import":
                    comp.register_import(short, imports[short])
                else:
                    comp.register_export(short, exports[short])
            event(f"{kind}: ok")
        except TamrlError as exc:
            event(f"{kind}: {type(exc).__name__}")
            changed = _differences(before, _snapshot(comp, exports))
            assert not changed, f"{kind} failed ({exc}) but changed the component: {changed}"
        finally:
            for f, a in imports.items():
                a[:] = saved[f]


# ------------------------------------------------------------------------------------------------- config text
@settings(FUZZ, max_examples=40)
@given(st.sampled_from(_paths(BASE)), st.sampled_from(PLAUSIBLE[:12]))
def test_a_key_given_twice_anywhere_is_refused(path, value):
    """YAML keeps the last of two equal keys silently: the loader refuses any duplicate, at any depth."""
    import copy

    from tamrl_coupler.settings.schema import ConfigError, parse_yaml

    text = yaml.safe_dump(copy.deepcopy(BASE), sort_keys=False)
    lines = text.splitlines()
    depth = len(path) - 1
    indent = "  " * depth
    i = next(k for k, ln in enumerate(lines) if ln.startswith(f"{indent}{path[-1]}:")
             and all(any(x.startswith("  " * d + f"{p}:") for x in lines[:k]) for d, p in enumerate(path[:-1])))
    lines.insert(i, f"{indent}{path[-1]}: {json.dumps(value)}")
    with pytest.raises(ConfigError, match=f"key '{path[-1]}' is given twice"):
        parse_yaml("\n".join(lines))


# ------------------------------------------------------------------------------------------------- tampering
@pytest.fixture(scope="module")
def artefacts(component, tmp_path_factory) -> dict[str, bytes]:
    """A restart of the fuzzed component and a small checkpoint, as written."""
    from tamrl_coupler.model import save_checkpoint

    d = tmp_path_factory.mktemp("artefacts")
    comp = component[0]
    restart = comp.write_restart(d / "r.nc")
    checkpoint = save_checkpoint(comp.ens, d / "c.npz")
    return {"restart": restart.read_bytes(), "checkpoint": checkpoint.read_bytes()}


@settings(FUZZ, max_examples=60)
@given(st.sampled_from(["restart", "checkpoint"]), st.floats(0.0, 1.0, exclude_max=True), st.integers(1, 255),
       st.booleans())
def test_any_byte_changed_in_a_restart_or_checkpoint_is_refused(artefacts, tmp_path_factory, kind, where, xor,
                                                               cut):
    """One byte anywhere changed (or the file cut there): the seal check refuses it before any parser reads it."""
    from tamrl_coupler import sealed

    raw = bytearray(artefacts[kind])
    pos = int(where * len(raw))
    if cut:
        raw = raw[:pos]
    else:
        raw[pos] ^= xor
    path = tmp_path_factory.mktemp("tamper") / ("x.nc" if kind == "restart" else "x.npz")
    path.write_bytes(bytes(raw))
    try:
        state = sealed.check(path)
    except sealed.SealError:
        event("seal does not match")
        return
    assert state is sealed.Seal.NONE, f"a changed {kind} passed its seal (byte {pos})"
    event("seal cut off")
    if kind == "restart":
        from tamrl_coupler.io.restart import RestartFile

        with pytest.raises(TamrlError):
            RestartFile(path)
    else:
        from tamrl_coupler.model import load_checkpoint

        with pytest.raises(TamrlError):
            load_checkpoint(path)
