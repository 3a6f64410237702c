"""Python side of the Fortran bridge: a handle table of components, zero-copy views on the host's arrays.

The C layer (``fortran_bridge/src/tamrl_bridge.c``) calls the functions below with plain ints, floats, strings and
memoryviews over the host's memory. Why it is written this way:

- **Every rank answers alike.** A failure on some ranks only (one rank's bad cells, forcing or file) is agreed by all
  ranks before the next collective (tamrl_coupler/parallel.py), so every rank returns the same non-zero status and a
  message naming the failing rank(s); none is left waiting in a collective. The host decides what to do.
- **Nothing escapes.** Every verb catches every exception (``BaseException``: a ``SystemExit`` from deep inside a
  library must not end the host's MPI job either), stores ``"<verb> on rank R: <Type>: <message>"`` as the last
  error and returns a non-zero status; the host decides whether to abort.
- **Zero copy.** A registered field is ``np.frombuffer`` over a writable memoryview of the host's array: the
  component reads imports and writes exports in the host's memory, every step, without copying; the view's address
  is checked against the address the host passed.
- **A batch system's stop reaches every rank.** SIGTERM, SIGINT, SIGHUP and SIGUSR1 (where the host left them at
  their default) become a stop request (``tamrl_coupler/signals.py``): every rank finishes the step it is in and
  ``tamrl_run_step`` returns ``TAMRL_STOPPED`` (9) on every rank; the host then writes its restart and the
  component's (``tamrl_write_restart``) and ends. A host with its own handlers keeps them.
- **MPI is the host's.** mpi4py is told not to initialise or finalise MPI; the host's Fortran communicator handle
  becomes an mpi4py communicator with ``MPI.Comm.f2py``; the MPI library versions seen by the host, the C layer and
  mpi4py must be identical, or initialisation fails naming all three.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tamrl_coupler import signals
from tamrl_coupler.errors import CheckpointError, ConfigError, InputError, OutputError, StopRequested, TamrlError
from tamrl_coupler.parallel import every_rank

# Status codes: keep in sync with fortran_bridge/src/tamrl_bridge.h and the Fortran module's parameters.
OK = 0
ERR_INPUT = 1
ERR_CONFIG = 2
ERR_CHECKPOINT = 3
ERR_PYTHON = 4
ERR_USAGE = 5
ERR_MPI = 6
ERR_INIT = 7
ERR_IO = 8
STOPPED = 9  # a stop signal reached some rank: the step is complete; write the restarts and end (signals.py)

IMPORT = 0
EXPORT = 1

DEFAULT_FACTORY = "tamrl_coupler.component:CouplingComponent"


class BridgeUsageError(TamrlError):
    """The host called a verb out of order: unknown handle, a field registered twice, etc."""


class MPIMismatchError(TamrlError):
    """Host, bridge and mpi4py do not share one MPI library, or the communicator does not match."""


@dataclass
class _Entry:
    """One initialised component and the host arrays registered with it."""

    component: Any
    step: Callable[[float, float], Any]  # the component's bound run_step, looked up once
    rank: int
    n_local: int
    # the quantity's name (the component's resolution) -> (kind, view, the name the host registered it under)
    fields: dict[str, tuple[int, np.ndarray, str]] = field(default_factory=dict)


_entries: dict[int, _Entry] = {}
_next_handle = 1
_last_error = ""
_rank_hint = "?"  # rank for messages before a handle exists


def last_error() -> str:
    """The message of the last failed verb (empty when none failed)."""
    return _last_error


def _status_of(exc: BaseException) -> int:
    if isinstance(exc, StopRequested):
        return STOPPED
    if isinstance(exc, BridgeUsageError):
        return ERR_USAGE
    if isinstance(exc, MPIMismatchError):
        return ERR_MPI
    if isinstance(exc, OutputError):
        return ERR_IO
    if isinstance(exc, ConfigError):
        return ERR_CONFIG
    if isinstance(exc, CheckpointError):
        return ERR_CHECKPOINT
    if isinstance(exc, InputError):
        return ERR_INPUT
    return ERR_PYTHON


def _fail(verb: str, rank: int | str, exc: BaseException) -> int:
    """Record ``exc`` as the last error and return its status; the traceback goes to stderr on request."""
    global _last_error
    _last_error = f"{verb} on rank {rank}: {type(exc).__name__}: {exc}"
    if os.environ.get("TAMRL_TRACEBACK"):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    return _status_of(exc)


def _entry(handle: int, verb: str) -> _Entry:
    try:
        return _entries[handle]
    except KeyError:
        raise BridgeUsageError(
            f"handle {handle} is not an initialised component (call tamrl_initialise first, and not after "
            f"tamrl_finalise); live handles: {sorted(_entries)}"
        ) from None


def import_mpi() -> Any:
    """mpi4py's MPI module, imported without initialising or finalising MPI (the host owns MPI's lifetime)."""
    if "mpi4py.MPI" not in sys.modules:
        import mpi4py

        mpi4py.rc.initialize = False
        mpi4py.rc.finalize = False
    from mpi4py import MPI

    return MPI


def _first_line(version: str) -> str:
    lines = [ln.strip() for ln in version.replace("\0", "").splitlines() if ln.strip()]
    return lines[0] if lines else "(empty)"


def _normalise_version(version: str) -> str:
    return "\n".join(ln.strip() for ln in version.replace("\0", "").splitlines() if ln.strip())


def check_mpi_libraries(versions: dict[str, str], mpi4py_version: str) -> None:
    """Fail unless every ``versions`` entry (who -> MPI_Get_library_version string) equals mpi4py's.

    Why: the communicator handle is an integer whose meaning is private to one MPI library; a host built
    with another MPI (or an mpi4py wheel bundling its own) would hand over a handle that means nothing here.
    """
    reference = _normalise_version(mpi4py_version)
    differing = {who: v for who, v in versions.items() if v and _normalise_version(v) != reference}
    if differing:
        seen = "; ".join(f"{who}: '{_first_line(v)}'" for who, v in differing.items())
        raise MPIMismatchError(
            f"the host, the bridge and mpi4py must use the same MPI library, but mpi4py uses "
            f"'{_first_line(mpi4py_version)}' while {seen}. Rebuild mpi4py against the host's MPI "
            f"(MPICC=mpicc pip install --no-binary=mpi4py mpi4py) and build the bridge with the same mpicc/mpif90."
        )


def _host_comm(fortran_comm: int, c_size: int, c_rank: int) -> Any:
    MPI = import_mpi()
    if not MPI.Is_initialized() or MPI.Is_finalized():
        raise MPIMismatchError("mpi4py sees MPI as not initialised although the host initialised it: "
                               "mpi4py is linked to a different MPI library than the host")
    comm = MPI.Comm.f2py(fortran_comm)
    if comm == MPI.COMM_NULL:
        raise MPIMismatchError(f"the host's communicator (Fortran handle {fortran_comm}) is MPI_COMM_NULL")
    if (comm.Get_size(), comm.Get_rank()) != (c_size, c_rank):
        raise MPIMismatchError(
            f"the host's communicator (Fortran handle {fortran_comm}) has size {c_size} and rank {c_rank} in C but "
            f"size {comm.Get_size()} and rank {comm.Get_rank()} in mpi4py: different MPI libraries"
        )
    return comm


# Python extensions that bundle their own copies of C libraries a host typically links too (netCDF4's wheel ships
# libnetcdf and libhdf5; a netcdf-fortran host already has the system's loaded). Without RTLD_DEEPBIND the wheel's
# extension binds to the host's libnetcdf for some symbols and its own for others, and crashes on import.
ISOLATED_EXTENSIONS = ("netCDF4",)


def _import_isolated_extensions() -> None:
    """Import the extensions of ISOLATED_EXTENSIONS (or $TAMRL_BRIDGE_DEEPBIND, comma-separated) with RTLD_DEEPBIND,
    so that they resolve their symbols in their own bundled libraries before the host's."""
    names = os.environ.get("TAMRL_BRIDGE_DEEPBIND")
    modules = [m.strip() for m in names.split(",") if m.strip()] if names is not None else list(ISOLATED_EXTENSIONS)
    deepbind = getattr(os, "RTLD_DEEPBIND", 0)
    if not deepbind:
        return
    flags = sys.getdlopenflags()
    sys.setdlopenflags(flags | deepbind)
    try:
        for name in modules:
            if name not in sys.modules:
                try:
                    importlib.import_module(name)
                except ImportError:
                    pass  # not installed: nothing to isolate
    finally:
        sys.setdlopenflags(flags)


def _describe_environment(rank: int, mpi_version: str) -> None:
    """One line per rank saying which interpreter, environment, package and MPI the host ended up with."""
    import tamrl_coupler

    print(f"tamrl bridge: rank {rank}: Python {sys.version.split()[0]} executable={sys.executable} "
          f"prefix={sys.prefix} base_prefix={sys.base_prefix} tamrl_coupler={Path(tamrl_coupler.__file__).parent} "
          f"numpy={np.__version__} MPI='{_first_line(mpi_version)}'", file=sys.stderr, flush=True)


def _load_factory(spec: str | None) -> Callable[..., Any]:
    """``"package.module:Name"`` -> the callable building a component (the default is the product's component)."""
    spec = spec or DEFAULT_FACTORY
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise BridgeUsageError(f"component factory '{spec}' must look like 'package.module:Name'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise BridgeUsageError(f"component factory '{spec}': cannot import module '{module_name}': {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise BridgeUsageError(f"component factory '{spec}': module '{module_name}' has no '{attr}'") from None


def _host_cells(n_local: int, cells: tuple[memoryview, ...]) -> Any:
    """The rank's host cells as the component's HostCells (copied once at initialisation: they never change)."""
    gidx, lat, lon, area, frac = (np.frombuffer(c, dtype=np.int64 if i == 0 else np.float64)[:n_local].copy()
                                  for i, c in enumerate(cells))
    if n_local and gidx.min() < 1:
        bad = int(np.argmin(gidx))
        raise InputError(f"global_index[{bad + 1}] = {gidx[bad]}: Fortran global indices are 1-based (expected >= 1)")
    gidx -= 1  # the component's contract is 0-based
    try:
        from tamrl_coupler.component import HostCells
    except ImportError:  # a component factory other than the product's may not need the product's HostCells
        return {"global_index": gidx, "lat": lat, "lon": lon, "area": area, "land_fraction": frac}
    return HostCells(gidx, lat, lon, area, frac)


def initialise(
    config_path: str,
    fortran_comm: int,
    comm_size: int,
    comm_rank: int,
    n_local: int,
    cells: tuple[memoryview, ...],
    restart: str | None,
    factory: str | None,
    host_mpi_version: str,
    bridge_mpi_version: str,
) -> int:
    """Build a component on the host's communicator; returns a handle > 0, or -status on failure."""
    global _next_handle, _rank_hint
    _rank_hint = str(comm_rank)
    try:
        _import_isolated_extensions()
        MPI = import_mpi()
        check_mpi_libraries({"the host (Fortran)": host_mpi_version, "the bridge (C)": bridge_mpi_version},
                            MPI.Get_library_version())
        comm = _host_comm(fortran_comm, comm_size, comm_rank)
        if os.environ.get("TAMRL_BRIDGE_VERBOSE"):
            _describe_environment(comm_rank, MPI.Get_library_version())
        with every_rank(comm, "tamrl_initialise"):  # one rank's bad arguments stop every rank
            if n_local == -1:  # the Fortran layer's signal for arrays of different lengths
                raise InputError("global_index, lat, lon, area and land_fraction must have the same length "
                                 "(one value per local cell)")
            if n_local < 0:
                raise InputError(f"the number of local cells is {n_local}; expected >= 0")
            host_cells = _host_cells(n_local, cells)
            build = _load_factory(factory)
        component = build(config_path, comm, host_cells, restart=restart or None)
        signals.install(only_default=True)  # the host's own signal handlers are left alone
        handle = _next_handle
        _next_handle += 1
        _entries[handle] = _Entry(component, component.run_step, comm_rank, n_local)
        return handle
    except BaseException as exc:
        return -_fail("tamrl_initialise", comm_rank, exc)


def _field_name(component: Any, kind: int, name: str) -> str:
    """The quantity ``name`` stands for, by the component's own resolution (the product's component: the
    vocabulary's names, aliases and CF standard names, as ``register_import``/``register_export`` accept them); a
    component without one accepts exactly the names it lists."""
    what = "export" if kind == EXPORT else "import"
    resolve = getattr(component, "field_name", None)
    if resolve is not None:
        return resolve(what, name)
    names = list(component.export_names if kind == EXPORT else component.import_names)
    if name not in names:
        raise InputError(f"unknown {what} field name '{name}'; the component accepts {names}")
    return name


def register(handle: int, kind: int, name: str, buffer: memoryview, address: int, n: int) -> int:
    """Register a host array once as an import (read each step) or export (written each step) field, in place."""
    verb = "tamrl_register_export" if kind == EXPORT else "tamrl_register_import"
    entry = _entries.get(handle)
    try:
        entry = _entry(handle, verb)
        what = "export" if kind == EXPORT else "import"
        short = _field_name(entry.component, kind, name)
        if short in entry.fields:
            given = entry.fields[short][2]
            same = f"'{name}' is '{short}', already registered as '{given}'" if given != name else \
                f"'{name}' is already registered"
            raise BridgeUsageError(f"{what} field {same}; register each field once (under one of its names) and "
                                   "update its array in place")
        if n == -2:  # the Fortran layer's signal for a strided section
            raise InputError(f"{what} field '{name}': the array is not contiguous (a strided section); pass a "
                             f"contiguous array with the TARGET attribute, it is used in place")
        if n != entry.n_local:
            raise InputError(
                f"{what} field '{name}': the array has {n} elements, expected {entry.n_local} (one per local cell "
                f"passed to tamrl_initialise)")
        view = np.frombuffer(buffer, dtype=np.float64)
        if n and view.ctypes.data != address:  # would mean a copy somewhere: never accept it silently
            raise BridgeUsageError(f"field '{name}': view address {view.ctypes.data:#x} != host address {address:#x}")
        if kind == EXPORT:
            entry.component.register_export(name, view)
        else:
            entry.component.register_import(name, view)
        entry.fields[short] = (kind, view, name)
        return OK
    except BaseException as exc:
        return _fail(verb, entry.rank if entry else _rank_hint, exc)


def run_step(handle: int, time_seconds: float, dt_seconds: float) -> int:
    """One coupling step: the component reads the registered imports and writes the exports in place."""
    try:
        _entries[handle].step(time_seconds, dt_seconds)
        return OK
    except BaseException as exc:
        entry = _entries.get(handle)
        error = exc if entry is not None else BridgeUsageError(
            f"handle {handle} is not an initialised component; live handles: {sorted(_entries)}")
        where = f"tamrl_run_step(time={time_seconds!r} s, dt={dt_seconds!r} s)"
        return _fail(where, entry.rank if entry else _rank_hint, error)


def write_restart(handle: int, path: str) -> int:
    entry = _entries.get(handle)
    try:
        entry = _entry(handle, "tamrl_write_restart")
        entry.component.write_restart(path)
        return OK
    except BaseException as exc:
        return _fail(f"tamrl_write_restart({path})", entry.rank if entry else _rank_hint, exc)


def finalise(handle: int) -> int:
    """Finalise the component and forget its handle (MPI and the interpreter stay up: the host owns them)."""
    entry = _entries.get(handle)
    try:
        entry = _entry(handle, "tamrl_finalise")
        del _entries[handle]
        entry.component.finalise()
        return OK
    except BaseException as exc:
        return _fail("tamrl_finalise", entry.rank if entry else _rank_hint, exc)


def field_address(handle: int, name: str) -> tuple[int, int, int]:
    """(status, address, size) of the array the component holds for field ``name``: proves zero copy."""
    entry = _entries.get(handle)
    try:
        entry = _entry(handle, "tamrl_field_address")
        known = {given: short for short, (_, _, given) in entry.fields.items()}
        short = known.get(name, name)
        for kind in (IMPORT, EXPORT):  # another name of a registered quantity
            if short not in entry.fields:
                try:
                    short = _field_name(entry.component, kind, name)
                except TamrlError:
                    pass
        if short not in entry.fields:
            raise InputError(f"field '{name}' is not registered; registered: {sorted(known)}")
        view = entry.fields[short][1]
        return OK, int(view.ctypes.data), int(view.size)
    except BaseException as exc:
        return _fail("tamrl_field_address", entry.rank if entry else _rank_hint, exc), 0, -1
