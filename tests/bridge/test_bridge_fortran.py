"""The Fortran bridge for real: CMake build and install, Fortran programs under mpiexec -n 2, the example host.

One CMake build per test session (a session temp dir, shared with examples/fortran_host/run.sh through
TAMRL_BUILD_DIR, so run.sh's own cmake calls find everything built). What is shown:
- the install tree (library, .mod, CMake package config, pkg-config file) and a pkg-config consumer;
- zero copy (the address Python uses is the host's; writes from Python appear in Fortran, changes made by Fortran
  between steps are seen by Python without re-registering) and the host's FP traps intact after every call;
- error paths, each a non-zero status and a message in Fortran: unknown field, wrong size, strided array, a field
  registered twice, NaN forcing with fill_policy "error" on one rank (the same status on both, then a retry that
  passes), a restart written over a directory (rank 0 fails, both return the status), a field one rank did not
  register, a missing restart and a missing checkpoint, a bad handle, a Python that cannot be found;
- the example land host on 2 ranks gives the offline driver's fluxes bit for bit, and its restart (write, then a new
  run from the file) continues bit for bit.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import require_tools

pytestmark = [pytest.mark.fortran, pytest.mark.mpi]

REPO = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO / "configs" / "run" / "demo.yaml"
DEMO_FORCING = REPO / "tamrl_coupler" / "sample_data" / "demo_forcing.nc"
N_STEPS = 280  # the whole demo (2015-01-01 to 02-05, 3-hourly): crosses the January model-period end


def _need(*tools: str) -> None:
    require_tools(*tools)


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    env.update(extra)
    return env


def _run(cmd: list[str], timeout: float = 240, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory) -> Path:
    """Bridge configured with this test's python, built and installed once per session (run.sh's layout)."""
    _need("cmake", "mpif90", "mpicc", "mpiexec")
    build = tmp_path_factory.mktemp("tamrl_build")
    _run(["cmake", "-S", str(REPO / "fortran_bridge"), "-B", str(build / "bridge"), "-DCMAKE_BUILD_TYPE=Release",
          f"-DCMAKE_INSTALL_PREFIX={build / 'bridge-install'}", f"-DTAMRL_PYTHON={sys.executable}"])
    _run(["cmake", "--build", str(build / "bridge"), "-j", "2"])
    _run(["cmake", "--install", str(build / "bridge")])
    return build


def _config(tmp_path: Path, **changes) -> Path:
    """The demo config with ``section.key`` values changed, written to tmp_path, its relative paths made absolute."""
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    base = DEMO_CONFIG.parent

    def absolute(value):
        if isinstance(value, str) and not value.startswith("package://") and not os.path.isabs(value) \
                and (base / value).exists():
            return str(base / value)
        return value

    for section in ("host", "forcing", "model", "regrid", "output"):
        if isinstance(data.get(section), dict):
            for key, value in data[section].items():
                data[section][key] = [absolute(v) for v in value] if isinstance(value, list) else absolute(value)
    for dotted, value in changes.items():
        section, key = dotted.split(".")
        data.setdefault(section, {})[key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _land_cells_file(path: Path, n_ranks: int = 2) -> int:
    """The demo forcing's land cells, split over ranks in contiguous blocks: 'rank gidx(1-based) lat lon area frac'."""
    import netCDF4

    with netCDF4.Dataset(DEMO_FORCING) as ds:
        lat, lon = ds["lat"][:].astype(float), ds["lon"][:].astype(float)
        frac = np.asarray(ds["landfrac"][:], dtype=float).ravel()
        area = np.asarray(ds["cell_area"][:], dtype=float).ravel()
    sel = np.flatnonzero(frac > 0)
    lat2, lon2 = (a.ravel() for a in np.meshgrid(lat, lon, indexing="ij"))
    rank = np.arange(sel.size) * n_ranks // sel.size
    lines = [f"{sel.size}"] + [f"{rank[k]} {g + 1} {float(lat2[g])!r} {float(lon2[g])!r} {float(area[g])!r} "
                               f"{float(frac[g])!r}" for k, g in enumerate(sel.tolist())]
    path.write_text("\n".join(lines) + "\n")
    return int(sel.size)


def _checks(build_dir: Path, config: Path, tmp_path: Path, env: dict[str, str] | None = None) -> tuple[dict, dict]:
    cells = tmp_path / "cells.txt"
    _land_cells_file(cells)
    proc = subprocess.run(["mpiexec", "-n", "2", str(build_dir / "bridge" / "tamrl_bridge_checks"), str(config),
                           str(cells), str(tmp_path)], capture_output=True, text=True, timeout=240,
                          env=env or _env())
    assert proc.returncode == 0, f"check program failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    checks: dict[str, list[dict[str, str]]] = {}
    messages: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("CHECK "):
            name, *pairs = line.split()[1:]
            checks.setdefault(name, []).append(dict(re.findall(r"(\w+)=\s*(\S+)", " ".join(pairs))))
        elif line.startswith("MSG "):
            _, name, msg = line.split(" ", 2)
            messages.setdefault(name, []).append(msg)
    return checks, messages


def _statuses(checks: dict, name: str) -> list[int]:
    assert name in checks, f"check {name} did not run: {sorted(checks)}"
    return [int(c["status"]) for c in checks[name]]


def test_install_tree_and_pkg_config(build_dir: Path):
    prefix = build_dir / "bridge-install"
    for rel in ("lib/libtamrl_bridge.so", "include/tamrl_bridge/tamrl_bridge.mod",
                "include/tamrl_bridge/tamrl_bridge.h",
                "lib/cmake/TamrlBridge/TamrlBridgeConfig.cmake", "lib/cmake/TamrlBridge/TamrlBridgeTargets.cmake",
                "lib/pkgconfig/tamrl_bridge.pc"):
        assert (prefix / rel).exists(), rel
    env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig"))
    flags = _run(["pkg-config", "--cflags", "--libs", "tamrl_bridge"], env=env).stdout.split()
    assert f"-I{prefix}/include/tamrl_bridge" in flags and "-ltamrl_bridge" in flags
    # the library knows the environment's python and where libpython is
    assert sys.executable.encode() in (prefix / "lib" / "libtamrl_bridge.so").read_bytes()
    ldd = _run(["ldd", str(prefix / "lib" / "libtamrl_bridge.so")]).stdout
    assert "libpython3" in ldd and "not found" not in ldd
    # a Makefile-style consumer: the benchmark's timer, compiled with mpif90 and pkg-config only, runs 200 steps
    exe = build_dir / "timer"
    _run(["mpif90", "-ffpe-trap=invalid,zero,overflow", str(REPO / "bench" / "bridge_step_timer.F90"), "-o",
          str(exe), *flags], cwd=build_dir)
    cells = build_dir / "timer_cells.txt"
    cells.write_text("2\n1 0.0 0.0 1.0 1.0 290 0.01 1e5 100 0\n2 1.0 1.0 1.0 1.0 290 0.01 1e5 100 0\n")
    out = _run(["mpiexec", "-n", "1", str(exe), str(cells), "none", "bridge_components:NullComponent", "10", "200",
                "0", "3600"], env=_env(PYTHONPATH=f"{REPO / 'bench'}{os.pathsep}{REPO}")).stdout
    assert re.search(r"TIMER steps=200 .* status=0", out), out


def test_zero_copy_and_error_paths_from_fortran(build_dir: Path, tmp_path: Path):
    config = _config(tmp_path, **{"forcing.fill_policy": "error"})
    checks, messages = _checks(build_dir, config, tmp_path)
    assert _statuses(checks, "initialise") == [0, 0], messages
    assert _statuses(checks, "register_all") == [0, 0], messages
    # zero copy: the array Python holds is the host's array, on both ranks, for an import and an export
    for name in ("address_tas", "address_gpp"):
        for c in checks[name]:
            assert int(c["status"]) == 0 and int(c["python"]) == int(c["fortran"]) != 0 and int(c["n"]) > 0
    # Python's writes are visible in Fortran (exports were -999 before the step), and NEE = GPP - Reco exactly
    assert _statuses(checks, "step1") == [0, 0], messages
    assert [c["all"] for c in checks["exports_written"]] == ["T", "T"]
    assert [c["balance"] for c in checks["exports"]] == ["T", "T"]
    assert all(float(c["gpp1"]) != -999.0 for c in checks["exports"])
    # the host's FP traps are on before, after a step, and at the end
    for name in ("traps_before", "traps_after_step", "traps_at_end"):
        assert checks[name] == [{"invalid": "T", "zero": "T", "overflow": "T"}] * 2, name
    # error paths: status and message in Fortran, and the host carries on
    expect = {
        "unknown_field": (1, "import field 'air_temperature_in_fahrenheit' is not known"),  # the component's words
        "wrong_size": (1, "import field 'tas': the array has"),
        "strided": (1, "is not contiguous"),
        "register_twice": (5, "field 'tas' is already registered"),
        # Fortran wrote NaN into tas(n) of rank 1 only, after registration: the component saw it in place, and
        # both ranks return the same status and message (rank 0 does not wait in a collective)
        "nan_forcing": (1, "forcing field 'tas'"),
        "restart_to_directory": (8, "is a directory"),  # rank 0 writes; rank 1 learns of its failure
        "missing_registration": (1, "rank 1: required import field(s) not registered: pr"),
        "missing_restart": (None, "no_such_restart.nc"),
        "bad_handle": (5, "handle -1 is not an initialised component"),
    }
    for name, (status, text) in expect.items():
        got = _statuses(checks, name)
        assert all(s != 0 for s in got) and (status is None or got == [status, status]), (name, got, messages)
        assert len(messages[name]) == 2 and all(text in m for m in messages[name]), (name, messages.get(name))
    assert all("NaN" in m and "rank 1, cell" in m and "rank 1 of 2 failed" in m for m in messages["nan_forcing"])
    assert _statuses(checks, "nan_retry") == [0, 0]  # the failed step changed nothing: retried, it passes
    # SIGTERM to rank 1 only: both ranks finish the step and return TAMRL_STOPPED (9) at the same step
    assert _statuses(checks, "stop_signal") == [9, 9], messages
    assert all("stopped on SIGTERM (received by rank 1)" in m for m in messages["stop_signal"]), messages
    assert _statuses(checks, "after_stop") == [0, 0]
    assert _statuses(checks, "second_component") == [0, 0]
    assert _statuses(checks, "write_restart") == [0, 0]
    assert (tmp_path / "bridge_checks_restart.nc").exists()
    assert _statuses(checks, "finalise") == [0, 0]
    assert _statuses(checks, "mpi_after") == [0, 0]  # the host's MPI is alive after the bridge is done


def _check_reports(directory: Path) -> str:
    """The check program's per-rank report files (written and flushed line by line, so an abort loses nothing)."""
    return "".join(p.read_text() for p in sorted(directory.glob("checks_rank*.txt")))


def test_missing_checkpoint_is_reported_to_fortran(build_dir: Path, tmp_path: Path):
    config = _config(tmp_path, **{"model.checkpoint": str(tmp_path / "no_such_checkpoint.pt")})
    cells = tmp_path / "cells.txt"
    _land_cells_file(cells)
    proc = subprocess.run(["mpiexec", "-n", "2", str(build_dir / "bridge" / "tamrl_bridge_checks"), str(config),
                           str(cells), str(tmp_path)], capture_output=True, text=True, timeout=240, env=_env())
    # the check program aborts when initialisation fails, after writing the status and the message to its
    # per-rank report files (mpiexec may drop stdout that was still in flight at the abort)
    out = _check_reports(tmp_path)
    assert "CHECK initialise status=3" in out, out + proc.stdout + proc.stderr
    assert "no_such_checkpoint.pt" in out and "CheckpointError" in out


def test_python_not_found_is_reported_to_fortran(build_dir: Path, tmp_path: Path):
    cells = tmp_path / "cells.txt"
    cells.write_text("1\n0 1 0.0 0.0 1.0 1.0\n")
    proc = subprocess.run(["mpiexec", "-n", "1", str(build_dir / "bridge" / "tamrl_bridge_checks"), "x.yaml",
                           str(cells), str(tmp_path)], capture_output=True, text=True, timeout=60,
                          env=_env(TAMRL_PYTHON=str(tmp_path / "no_venv" / "bin" / "python")))
    out = _check_reports(tmp_path)
    assert "CHECK initialise status=7" in out, out + proc.stdout + proc.stderr
    assert "no_venv/bin/python" in out and "TAMRL_PYTHON" in out


def test_embedded_python_finds_the_environment(build_dir: Path, tmp_path: Path):
    """No Python paths from the host: the venv recorded at configure time gives sys.prefix and site-packages."""
    cells = tmp_path / "cells.txt"
    cells.write_text("1\n0 1 0.0 0.0 1.0 1.0\n")
    env = _env(TAMRL_BRIDGE_VERBOSE="1", PYTHONPATH=str(REPO))  # only the working tree, as an editable install
    env.pop("PYTHONHOME", None)
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run(["mpiexec", "-n", "1", str(build_dir / "bridge" / "tamrl_bridge_checks"), "x.yaml",
                           str(cells), str(tmp_path), "tamrl_coupler_no_such_module:Factory"],
                          capture_output=True, text=True, timeout=60, env=env)
    line = next((ln for ln in proc.stderr.splitlines() if ln.startswith("tamrl bridge: rank 0")), None)
    assert line is not None, proc.stdout + proc.stderr
    assert f"prefix={sys.prefix} " in line and f"executable={sys.executable} " in line
    assert f"tamrl_coupler={REPO / 'tamrl_coupler'}" in line and "MPICH" in line
    assert "CHECK initialise status=5" in proc.stdout  # then the bad factory: a usage error, not a crash


def _read_fluxes(path: Path) -> dict[str, np.ndarray]:
    import netCDF4

    with netCDF4.Dataset(path) as ds:
        ds.set_auto_mask(False)
        return {name: np.asarray(ds[name][:]) for name in ds.variables}


def test_fortran_host_equals_offline_driver_bit_for_bit(build_dir: Path, tmp_path: Path):
    """examples/fortran_host/run.sh 2 OUT against `tamrl-coupler run configs/run/demo.yaml` on 2 ranks."""
    host_out, offline_out = tmp_path / "host", tmp_path / "offline"
    env = _env(TAMRL_PYTHON=sys.executable, TAMRL_BUILD_DIR=str(build_dir))
    proc = _run(["bash", str(REPO / "examples" / "fortran_host" / "run.sh"), "2", str(host_out)], env=env)
    assert f"{N_STEPS} steps done" in proc.stdout and "cells where not NEE = GPP - Reco: 0" in proc.stdout, proc.stdout
    assert (host_out / "tamrl_fluxes_nee_map.png").stat().st_size > 10_000  # the main job ends with a map
    _run(["mpiexec", "-n", "2", sys.executable, "-m", "tamrl_coupler", "run", str(DEMO_CONFIG), "--output",
          str(offline_out)], env=_env())
    host_files = sorted(host_out.glob("*.nc"))
    assert [p.name for p in host_files] == ["tamrl_fluxes_20150101T000000.nc"], host_files
    offline_file = offline_out / host_files[0].name
    host, offline = _read_fluxes(host_files[0]), _read_fluxes(offline_file)
    assert host["time"].size == N_STEPS
    for name in ("time", "time_bnds", "lat", "lon", "landfrac", "cell_area",
                 "gpp", "reco", "nee", "gpp_spread", "reco_spread", "nee_spread"):
        assert host[name].shape == offline[name].shape, name
        assert np.array_equal(host[name], offline[name]), f"{name}: max |diff| " \
            f"{np.nanmax(np.abs(host[name] - offline[name]))}"
    land = offline["gpp"][0] < 1e19
    assert land.sum() > 100 and np.abs(offline["gpp"][:, land]).max() > 0  # real fluxes, not all zero
    # and the same metadata: every attribute of every variable, and the global ones both writers make
    import netCDF4

    with netCDF4.Dataset(host_files[0]) as h, netCDF4.Dataset(offline_file) as o:
        # the offline driver adds its global totals per record (PgC); the host's own run totals (kg C, over land
        # area) must be their sum
        totals = {n for n in o.variables if n.startswith("total_")}
        assert totals == {"total_gpp", "total_reco", "total_nee"} and set(o.variables) - totals == set(h.variables)
        for f in ("gpp", "reco", "nee"):
            run_total_kg = math.fsum(o[f"total_{f}"][:].tolist()) * 1e12
            assert abs(h.getncattr(f"host_total_{f}_kgC") - run_total_kg) <= 1e-9 * abs(run_total_kg), f
        for name, var in ((n, v) for n, v in o.variables.items() if n not in totals):
            assert {k: var.getncattr(k) for k in var.ncattrs()} == \
                   {k: h[name].getncattr(k) for k in h[name].ncattrs()}, name
        assert h["nee"].ancillary_variables == "nee_spread" and h.institution == o.institution
        for key in ("Conventions", "title", "institution", "sign_convention", "nee_definition", "flux_unit",
                    "flux_unit_description"):
            assert h.getncattr(key) == o.getncattr(key), key
        assert "Fortran bridge" in h.source


def test_fortran_host_honours_atmosphere_positive_and_totals_land_area(build_dir: Path, tmp_path: Path):
    """The example host with sign_convention atmosphere_positive (NEE = Reco - GPP) runs through its own balance
    checks, and its global totals are the fluxes integrated over land area (cell area x land fraction)."""
    config = _config(tmp_path, **{"exports.sign_convention": "atmosphere_positive", "output.map": False})
    out = tmp_path / "host"
    env = _env(TAMRL_PYTHON=sys.executable, TAMRL_BUILD_DIR=str(build_dir), TAMRL_HOST_STEPS="16")
    proc = _run(["bash", str(REPO / "examples" / "fortran_host" / "run.sh"), "2", str(out), str(config)], env=env)
    assert "16 steps done" in proc.stdout and "cells where not NEE = Reco - GPP: 0" in proc.stdout, proc.stdout
    import netCDF4

    (path,) = out.glob("tamrl_fluxes_*.nc")
    with netCDF4.Dataset(path) as ds:
        assert ds.sign_convention == "atmosphere_positive"
        f = {k: np.ma.filled(ds[k][:].astype(np.float64), np.nan) for k in ("gpp", "reco", "nee")}
        area = np.asarray(ds["cell_area"][:])
        land_area = area * np.asarray(ds["landfrac"][:])
        assert ds["time"].units.startswith("seconds since")
        dt = np.diff(np.asarray(ds["time_bnds"][:]), axis=1)[:, 0]
        totals = {k: float(ds.getncattr(f"host_total_{k}_kgC")) for k in ("gpp", "reco", "nee")}
    land = np.isfinite(f["gpp"][0])
    assert np.array_equal(f["nee"][:, land], f["reco"][:, land] - f["gpp"][:, land])  # bit for bit
    for k in ("gpp", "reco", "nee"):
        assert totals[k] == pytest.approx(np.nansum(f[k] * dt[:, None, None] * land_area), rel=1e-10), k
    by_cell_area = np.nansum(f["gpp"] * dt[:, None, None] * area)
    assert by_cell_area > 1.2 * totals["gpp"] > 0  # what leaving out the land fraction would have given
    assert totals["nee"] == pytest.approx(totals["reco"] - totals["gpp"], rel=1e-12, abs=1e-6)


PYTHON_HOST = r"""
import ctypes, sys
import numpy as np
from mpi4py import MPI
from tamrl_coupler import bridge

lib = ctypes.CDLL(sys.argv[1])
n = 3
gidx = np.arange(1, n + 1, dtype=np.int64)
lat, lon, area, frac = np.zeros(n), np.zeros(n), np.ones(n), np.ones(n)
handle = ctypes.c_int(-1)
ptr = ctypes.c_void_p
st = lib.tamrl_bridge_initialise(ctypes.byref(handle), b"none", MPI.COMM_WORLD.py2f(), ctypes.c_int64(n),
                                 ptr(gidx.ctypes.data), ptr(lat.ctypes.data), ptr(lon.ctypes.data),
                                 ptr(area.ctypes.data), ptr(frac.ctypes.data), None,
                                 b"bridge_components:NullComponent", MPI.Get_library_version().encode())
assert st == 0 and handle.value > 0, st
tas = np.full(n, 280.0)
assert lib.tamrl_bridge_register(handle, 0, b"tas", ptr(tas.ctypes.data), ctypes.c_int64(n)) == 0
view = bridge._entries[handle.value].component.fields["tas"]
view[1] = 300.0                      # a write by the component is a write to the host's array
assert tas[1] == 300.0 and view.ctypes.data == tas.ctypes.data
lib.tamrl_bridge_run_step.argtypes = [ctypes.c_int, ctypes.c_double, ctypes.c_double]
assert all(lib.tamrl_bridge_run_step(handle, k * 3600.0, 3600.0) == 0 for k in range(100))
assert lib.tamrl_bridge_run_step(99, 0.0, 3600.0) == 5
buf = ctypes.create_string_buffer(512)
assert lib.tamrl_bridge_last_error(buf, 512) > 0 and b"handle 99" in buf.value
assert lib.tamrl_bridge_finalise(handle) == 0
print("PYTHON HOST OK")
"""


def test_python_host_through_the_c_layer(build_dir: Path, tmp_path: Path):
    """A Python process as the host (ctypes): the C layer reuses its interpreter and takes/gives back the GIL."""
    script = tmp_path / "python_host.py"
    script.write_text(PYTHON_HOST)
    lib = build_dir / "bridge-install" / "lib" / "libtamrl_bridge.so"
    out = _run([sys.executable, str(script), str(lib)],
               env=_env(PYTHONPATH=f"{REPO / 'bench'}{os.pathsep}{REPO}")).stdout
    assert "PYTHON HOST OK" in out


def _host_namelist(out: Path, steps: int, **overrides: str) -> Path:
    """examples/fortran_host/host_namelist.py for the demo, with some /host/ values replaced or added."""
    text = _run([sys.executable, str(REPO / "examples" / "fortran_host" / "host_namelist.py"), str(DEMO_CONFIG),
                 str(out), "--steps", str(steps)], env=_env()).stdout
    lines = [ln for ln in text.splitlines() if ln.split("=")[0].strip() not in overrides and ln.strip() != "/"]
    lines += [f"  {k} = {v}" for k, v in overrides.items()] + ["/"]
    out.mkdir(parents=True, exist_ok=True)
    path = out / "land_host.nml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fortran_host_restart_is_bit_for_bit(build_dir: Path, tmp_path: Path):
    """The example host on 2 ranks: 200 steps + restart file + 80 steps from it (across the January model-period
    end) equals one 280-step run, every export on every cell and step."""
    env = _env(TAMRL_PYTHON=sys.executable, TAMRL_BUILD_DIR=str(build_dir))
    full_out = tmp_path / "full"
    _run(["bash", str(REPO / "examples" / "fortran_host" / "run.sh"), "2", str(full_out)], env=env)  # builds too
    host = build_dir / "host" / "land_host"
    full = _read_fluxes(full_out / "tamrl_fluxes_20150101T000000.nc")
    n1 = 200
    restart = tmp_path / "restart" / "tamrl_restart.nc"
    restart.parent.mkdir()
    nml1 = _host_namelist(tmp_path / "first", n1, restart_out=f"'{restart}'")
    _run(["mpiexec", "-n", "2", str(host), str(nml1)], env=env)
    assert restart.exists()
    text = nml1.read_text()
    start = float(re.search(r"start_seconds = ([-0-9.e+]+)", text).group(1))
    dt = float(re.search(r"\bdt = ([0-9.e+]+)", text).group(1))
    second_out = tmp_path / "second"
    nml2 = _host_namelist(second_out, N_STEPS - n1, restart_in=f"'{restart}'", start_seconds=repr(start + n1 * dt),
                          output=f"'{second_out / 'second.nc'}'")
    proc = _run(["mpiexec", "-n", "2", str(host), str(nml2)], env=env)
    assert f"{N_STEPS - n1} steps done" in proc.stdout, proc.stdout
    second = _read_fluxes(second_out / "second.nc")
    assert np.array_equal(second["time"], full["time"][n1:])
    for name in ("gpp", "reco", "nee", "gpp_spread", "reco_spread", "nee_spread"):
        assert np.array_equal(second[name], full[name][n1:]), f"{name}: max |diff| " \
            f"{np.nanmax(np.abs(second[name] - full[name][n1:]))}"
    land = full["gpp"][0] < 1e19
    assert np.abs(second["gpp"][:, land]).max() > 0
