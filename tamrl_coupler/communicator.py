"""The communicator a run uses: mpi4py's ``COMM_WORLD``, or one process without MPI.

Why: a single-process run (``tamrl-coupler demo``, a laptop, a CI job) needs no MPI, and mpi4py is often the one
package that will not install or import (no MPI library, or a wheel built for another one). So mpi4py is optional:
:func:`world` returns ``MPI.COMM_WORLD`` when mpi4py imports, else a :class:`SerialComm` that does, for one rank,
what every collective the product calls does (a copy), after checking that the launcher did not start several
ranks: those need real MPI, and are refused with an error that says how to get it.

:func:`mpi_names` gives the MPI constants (datatypes, reduction ops) that go with a communicator, so the code that
passes them works the same on both.
"""

from __future__ import annotations

import logging
import os
from types import SimpleNamespace
from typing import Any

import numpy as np

from tamrl_coupler.errors import InputError

log = logging.getLogger(__name__)

# environment variables through which MPI launchers (Open MPI, MPICH/Hydra, MVAPICH, Slurm's PMI) give size / rank
LAUNCH_SIZE = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")
LAUNCH_RANK = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK")

INSTALL_HINT = ("install mpi4py built against your MPI library (MPICC=mpicc pip install --no-binary=mpi4py mpi4py, "
                "or bash scripts/install.sh)")


def launched_size() -> int:
    """Ranks the MPI launcher started (1 when not started by a launcher)."""
    return next((int(os.environ[v]) for v in LAUNCH_SIZE if os.environ.get(v, "").isdigit()), 1)


def launched_rank() -> int:
    """This process's rank as the launcher numbered it (0 when not started by a launcher)."""
    return next((int(os.environ[v]) for v in LAUNCH_RANK if os.environ.get(v, "").isdigit()), 0)


def _reduce_one(value: Any, op: Any = None) -> Any:
    return value  # a reduction over one rank is that rank's value, whatever the operation


class SerialComm:
    """The mpi4py communicator methods the product calls, for one process (rank 0 of 1) without MPI.

    Collectives return (lower case) or copy (upper case, buffer specs as mpi4py takes them: ``buf``,
    ``[buf, type]``, ``[buf, (counts, displs)]`` or ``[buf, (counts, displs), type]``) the one rank's data."""

    def Get_rank(self) -> int:
        return 0

    def Get_size(self) -> int:
        return 1

    def Barrier(self) -> None:
        pass

    def Free(self) -> None:
        pass

    def Split_type(self, split_type: Any = None, key: int = 0) -> SerialComm:
        return self

    def Dup(self) -> SerialComm:
        return self

    def bcast(self, obj: Any, root: int = 0) -> Any:
        return obj

    def gather(self, obj: Any, root: int = 0) -> list[Any]:
        return [obj]

    def allgather(self, obj: Any) -> list[Any]:
        return [obj]

    def alltoall(self, objs: list[Any]) -> list[Any]:
        return list(objs)

    allreduce = staticmethod(_reduce_one)
    reduce = staticmethod(_reduce_one)

    def Allreduce(self, send: Any, recv: Any, op: Any = None) -> None:
        _copy(send, recv)

    def Allgatherv(self, send: Any, recv: Any) -> None:
        _copy(send, recv)

    def Gatherv(self, send: Any, recv: Any, root: int = 0) -> None:
        _copy(send, recv)

    def Alltoallv(self, send: Any, recv: Any) -> None:
        _copy(send, recv)

    def Abort(self, errorcode: int = 1) -> None:
        os._exit(errorcode)


def _flat(spec: Any) -> np.ndarray:
    """The part of a buffer spec one rank sends or receives: counts[0] values from displs[0]."""
    if isinstance(spec, (list, tuple)):
        buf = np.asarray(spec[0]).reshape(-1)
        layout = next((s for s in spec[1:] if isinstance(s, (list, tuple))), None)
        if layout is not None:
            counts, displs = layout
            return buf[int(displs[0]): int(displs[0]) + int(counts[0])]
        return buf
    return np.asarray(spec).reshape(-1)


def _copy(send: Any, recv: Any) -> None:
    src, dst = _flat(send), _flat(recv)
    if src.size != dst.size:
        raise ValueError(f"one-rank collective: {src.size} values sent, {dst.size} expected")
    dst[...] = src


# the constants the product passes with buffers and reductions; a SerialComm needs none of their values
SERIAL_NAMES = SimpleNamespace(INT64_T="INT64_T", DOUBLE="DOUBLE", INT="INT", MAX="MAX", MIN="MIN", SUM="SUM",
                               LAND="LAND", LOR="LOR", COMM_TYPE_SHARED="COMM_TYPE_SHARED")


def mpi_names(comm: Any) -> Any:
    """mpi4py's ``MPI`` module for an mpi4py communicator, the placeholders of :data:`SERIAL_NAMES` for a
    :class:`SerialComm` (or no communicator)."""
    if comm is None or isinstance(comm, SerialComm):
        return SERIAL_NAMES
    from mpi4py import MPI

    return MPI


def load_mpi() -> tuple[Any, str]:
    """(mpi4py's MPI module, "") when it imports, else (None, why not)."""
    try:
        from mpi4py import MPI
    except Exception as exc:  # missing, or built for an MPI library that is not here
        return None, f"{type(exc).__name__}: {exc}".strip()
    return MPI, ""


def world() -> Any:
    """``MPI.COMM_WORLD``, or a :class:`SerialComm` when mpi4py is missing or broken and one process was started.

    Several ranks without a working mpi4py are an :class:`~tamrl_coupler.errors.InputError` on every rank (none
    waits for another: the launcher's rank 0 says it, as the command line prints agreed errors once)."""
    mpi, why = load_mpi()
    if mpi is not None:
        return mpi.COMM_WORLD
    size = launched_size()
    if size > 1:
        err = InputError(f"{size} MPI ranks were started, but mpi4py cannot be used ({why}); {INSTALL_HINT}, or run "
                         "on one process without mpiexec")
        err.comm_rank = launched_rank()  # type: ignore[attr-defined]
        err.agreed = True  # type: ignore[attr-defined]  # every rank raises it, nobody waits
        raise err
    log.info("mpi4py is not usable (%s): running on one process without MPI", why)
    return SerialComm()
