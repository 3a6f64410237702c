"""The Python half of the Fortran bridge, in process: MPI library check, handle table, error statuses, zero copy.

The C layer calls these same functions with memoryviews over the host's memory; here the "host memory" is numpy
arrays of this process, so addresses and in-place writes can be checked directly.
"""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from tamrl_coupler import bridge

OPEN_MPI = "Open MPI v4.1.4, package: Debian OpenMPI, ident: 4.1.4, repo rev: v4.1.4, May 26, 2022"


def _cells(n: int, start: int = 1) -> tuple[tuple[memoryview, ...], list[np.ndarray]]:
    gidx = np.arange(start, start + n, dtype=np.int64)
    lat = np.linspace(-40.0, 40.0, n)
    lon = np.linspace(0.0, 300.0, n)
    area = np.full(n, 1.0e10)
    frac = np.ones(n)
    arrays = [gidx, lat, lon, area, frac]
    return tuple(memoryview(a).cast("B") for a in arrays), arrays


def _init(n=4, start=1, factory="bench_missing:Nothing", host=None, size=None, rank=None):
    version = MPI.Get_library_version()
    views, _ = _cells(n, start)
    comm = MPI.COMM_WORLD
    return bridge.initialise("no_config.yaml", comm.py2f(), comm.Get_size() if size is None else size,
                             comm.Get_rank() if rank is None else rank, n, views, None, factory,
                             version if host is None else host, version)


def test_same_mpi_library_passes_and_a_different_one_is_named():
    mine = MPI.Get_library_version()
    bridge.check_mpi_libraries({"the host (Fortran)": mine, "the bridge (C)": mine.rstrip() + "\0\n"}, mine)
    with pytest.raises(bridge.MPIMismatchError) as err:
        bridge.check_mpi_libraries({"the host (Fortran)": OPEN_MPI, "the bridge (C)": mine}, mine)
    msg = str(err.value)
    assert "Open MPI v4.1.4" in msg and "the host (Fortran)" in msg
    assert mine.splitlines()[0].strip() in msg  # mpi4py's library, named
    assert "the bridge (C)" not in msg  # only the one that differs
    assert "mpi4py" in msg and "mpicc" in msg  # and how to fix it


def test_initialise_with_another_mpi_library_returns_status_and_message():
    assert _init(host=OPEN_MPI) == -bridge.ERR_MPI
    assert "Open MPI v4.1.4" in bridge.last_error()
    assert bridge.last_error().startswith("tamrl_initialise on rank 0:")


def test_communicator_seen_differently_from_c_is_refused():
    assert _init(size=MPI.COMM_WORLD.Get_size() + 2) == -bridge.ERR_MPI
    assert "different MPI libraries" in bridge.last_error()


def test_global_index_must_be_one_based():
    assert _init(start=0) == -bridge.ERR_INPUT
    assert "global_index[1] = 0" in bridge.last_error() and "1-based" in bridge.last_error()


def test_cell_arrays_of_different_lengths_are_refused():
    version = MPI.Get_library_version()
    views, _ = _cells(3)
    st = bridge.initialise("x.yaml", MPI.COMM_WORLD.py2f(), MPI.COMM_WORLD.Get_size(), MPI.COMM_WORLD.Get_rank(),
                           -1, views, None, None, version, version)
    assert st == -bridge.ERR_INPUT
    assert "same length" in bridge.last_error()


@pytest.mark.parametrize(("spec", "expected"), [
    ("no_colon_here", "must look like 'package.module:Name'"),
    ("tamrl_coupler_no_such_module:Factory", "cannot import module 'tamrl_coupler_no_such_module'"),
    ("tamrl_coupler.bridge:NoSuchFactory", "module 'tamrl_coupler.bridge' has no 'NoSuchFactory'"),
])
def test_bad_component_factory_is_a_usage_error(spec, expected):
    assert _init(factory=spec) == -bridge.ERR_USAGE
    assert expected in bridge.last_error()


def test_every_verb_on_an_unknown_handle_returns_usage_error():
    buf = np.zeros(4)
    checks = [
        bridge.register(987, bridge.IMPORT, "tas", memoryview(buf).cast("B"), buf.ctypes.data, 4),
        bridge.run_step(987, 0.0, 3600.0),
        bridge.write_restart(987, "/tmp/never.nc"),
        bridge.finalise(987),
        bridge.field_address(987, "tas")[0],
    ]
    assert checks == [bridge.ERR_USAGE] * 5
    assert "handle 987 is not an initialised component" in bridge.last_error()


def test_status_codes_follow_the_exception_type():
    from tamrl_coupler.errors import CheckpointError, InputError, OutputError, RankFailure
    from tamrl_coupler.settings import ConfigError

    cases = {InputError("x"): bridge.ERR_INPUT, ConfigError("x"): bridge.ERR_CONFIG, OutputError("x"): bridge.ERR_IO,
             RankFailure("x"): bridge.ERR_PYTHON,
             CheckpointError("x"): bridge.ERR_CHECKPOINT, RuntimeError("x"): bridge.ERR_PYTHON,
             SystemExit(3): bridge.ERR_PYTHON, KeyboardInterrupt(): bridge.ERR_PYTHON,
             bridge.BridgeUsageError("x"): bridge.ERR_USAGE, bridge.MPIMismatchError("x"): bridge.ERR_MPI}
    for exc, status in cases.items():
        assert bridge._fail("verb", 0, exc) == status
        assert bridge.last_error().startswith(f"verb on rank 0: {type(exc).__name__}")


def test_header_and_fortran_status_codes_match_python():
    """The three layers must agree on the numbers a host tests against."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "fortran_bridge" / "src"
    header = (root / "tamrl_bridge.h").read_text()
    module = (root / "tamrl_bridge.F90").read_text().replace("&\n", "")
    for name in ("OK", "ERR_INPUT", "ERR_CONFIG", "ERR_CHECKPOINT", "ERR_PYTHON", "ERR_USAGE", "ERR_MPI", "ERR_INIT",
                 "ERR_IO"):
        value = getattr(bridge, name)
        assert f"TAMRL_{name} = {value}" in header
        assert f"TAMRL_{name} = {value}" in " ".join(module.split())


def test_bridge_and_component_resolve_names_alike_and_refuse_one_quantity_twice(tmp_path):
    """The bridge asks the component what a name means: an export by its CF standard name is accepted as the
    component accepts it, and one quantity under a second name (tas, then air_temperature) is an error naming both,
    in the bridge as in the component, instead of one array silently never being read."""
    import yaml
    from conftest import DEMO, DEMO_CONFIG

    from tamrl_coupler.io.hostgrid import read_host_grid

    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["regrid"]["cache_dir"] = str(tmp_path / "weights")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(raw))
    host = read_host_grid(DEMO)
    arrays = [np.arange(1, host.size + 1, dtype=np.int64), host.lat, host.lon, host.area, host.landfrac]
    views = tuple(memoryview(np.ascontiguousarray(a)).cast("B") for a in arrays)
    version = MPI.Get_library_version()
    comm = MPI.COMM_WORLD
    handle = bridge.initialise(str(config), comm.py2f(), comm.Get_size(), comm.Get_rank(), host.size, views, None,
                               None, version, version)
    assert handle > 0, bridge.last_error()
    try:
        fields = {n: np.zeros(host.size) for n in ("tas", "air_temperature", "nee_by_cf", "nee")}

        def register(kind, name, key=None):
            a = fields[key or name]
            return bridge.register(handle, kind, name, memoryview(a).cast("B"), a.ctypes.data, a.size)

        assert register(bridge.IMPORT, "tas") == bridge.OK
        assert register(bridge.IMPORT, "air_temperature") == bridge.ERR_USAGE
        assert "import field 'air_temperature' is 'tas', already registered as 'tas'" in bridge.last_error()
        nep = "surface_net_downward_mass_flux_of_carbon_dioxide_expressed_as_carbon_due_to_all_land_processes_" \
              "excluding_anthropogenic_land_use_change"
        assert register(bridge.EXPORT, nep, "nee_by_cf") == bridge.OK, bridge.last_error()  # NEE by its CF name
        assert register(bridge.EXPORT, "nee") == bridge.ERR_USAGE
        assert f"export field 'nee' is 'nee', already registered as '{nep}'" in bridge.last_error()
        status, address, size = bridge.field_address(handle, "nee")  # found under either name
        assert status == bridge.OK and address == fields["nee_by_cf"].ctypes.data and size == host.size
        assert register(bridge.IMPORT, "tair", "air_temperature") == bridge.ERR_INPUT
        assert "import field 'tair' is not known" in bridge.last_error()
        component = bridge._entries[handle].component  # the component itself: the same rule
        with pytest.raises(Exception, match="import field 'air_temperature' is 'tas', already registered as 'tas'"):
            component.register_import("air_temperature", fields["air_temperature"])
        component.register_import("tas", fields["tas"])  # the same name again: a new array for it
    finally:
        assert bridge.finalise(handle) == bridge.OK
