"""One rank's failure is every rank's failure: the agreement the ranks reach before each collective.

Why: work that can fail on some ranks only (a NaN in one rank's forcing, a field one rank did not register, a file
only rank 0 writes, a model error on one rank's cells) is followed by a collective (``Alltoallv``, ``gather``,
``bcast``). A rank that raises leaves the others waiting in that collective forever, which on a cluster burns the
allocation with the error sitting in a log. So each piece of such work runs inside :meth:`Agreement.guard`; on
leaving it the ranks reduce three integers (one small ``Allreduce``: whether any rank failed, and the largest and
smallest checksum of a description that must be the same on every rank, e.g. the registered field names) and, only
when some rank failed or the descriptions differ, gather the details. Then every rank raises the same error: the
product's type of the first failing rank's error (an ``InputError`` stays an ``InputError``, so the bridge returns
the same status on every rank), naming the failing rank(s) and carrying that rank's message. A library's own
exception becomes :class:`~tamrl_coupler.errors.RankFailure`. On the failing rank the original is chained.

With one rank (or no communicator) nothing is exchanged and the original exception propagates unchanged.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np

from tamrl_coupler.errors import InputError, RankFailure, TamrlError

T = TypeVar("T")


def _product_types() -> dict[str, type[TamrlError]]:
    """Every TamrlError subclass by name (those defined in higher layers too, e.g. the bridge's usage error)."""
    found: dict[str, type[TamrlError]] = {"TamrlError": TamrlError}
    todo: list[type[TamrlError]] = [TamrlError]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.setdefault(sub.__name__, sub)
            todo.append(sub)
    return found


def _ranks(ranks: list[int]) -> str:
    return f"rank {ranks[0]}" if len(ranks) == 1 else "ranks " + ", ".join(map(str, ranks))


def _mark(err: TamrlError, failed: list[int], rank: int) -> TamrlError:
    err.failed_ranks = failed  # type: ignore[attr-defined]
    err.agreed = True  # type: ignore[attr-defined]  # raised by every rank (the CLI prints it once, on rank 0)
    err.comm_rank = rank  # type: ignore[attr-defined]
    return err


def agreed_error(reports: list[tuple[str, str, bool] | None], what: str, rank: int) -> TamrlError:
    """The error every rank raises, from each rank's report: None (no failure) or (type name, message, whether
    the type is one of the product's)."""
    failed = [r for r, rep in enumerate(reports) if rep is not None]
    type_name, message, is_product = reports[failed[0]]  # type: ignore[misc]
    cls = _product_types().get(type_name, RankFailure) if is_product else RankFailure
    if not is_product:
        message = f"{type_name}: {message}"
    text = f"{what}: {message} (every rank stopped: {_ranks(failed)} of {len(reports)} failed)"
    try:
        err = cls(text)
    except TypeError:  # a product type with another constructor
        err = RankFailure(text)
    return _mark(err, failed, rank)


def _checksum(text: str) -> int:
    return zlib.crc32(text.encode())  # the same in every process (Python's hash() is salted per process)


class Agreement:
    """The ranks of ``comm`` agreeing, before a collective, that nobody failed (see the module docstring).

    Keeps its two 3-integer buffers, so a guarded coupling step allocates no arrays for the agreement."""

    def __init__(self, comm: Any):
        self.comm = comm
        self.size = 1 if comm is None else comm.Get_size()
        self.rank = 0 if comm is None else comm.Get_rank()
        self._send = np.zeros(3, dtype=np.int64)
        self._recv = np.zeros(3, dtype=np.int64)

    def check(self, error: BaseException | None, what: str, same: str | None = None) -> None:
        """Collective: raise on every rank when ``error`` is not None on any rank, or when ``same`` (a text that
        must be identical on every rank) differs between ranks; otherwise return."""
        if self.size == 1 or getattr(error, "agreed", False):  # an agreed error is being raised by every rank
            if error is not None:
                raise error
            return
        from mpi4py import MPI

        s = self._send
        s[0] = 0 if error is None else 1
        s[1] = 0 if same is None else _checksum(same)
        s[2] = -s[1]
        self.comm.Allreduce(s, self._recv, op=MPI.MAX)
        failed, hi, neg_lo = (int(v) for v in self._recv)
        if failed:
            report = None if error is None else (type(error).__name__, str(error), isinstance(error, TamrlError))
            raise agreed_error(self.comm.allgather(report), what, self.rank) from error
        if hi != -neg_lo:
            seen = self.comm.allgather(same)
            detail = "; ".join(f"rank {r}: {v}" for r, v in enumerate(seen))
            raise _mark(InputError(f"{what}: the ranks differ where they must agree ({detail})"),
                        list(range(self.size)), self.rank)

    @contextmanager
    def guard(self, what: str, same: Callable[[], str] | None = None) -> Iterator[None]:
        """Run the body on each rank; on leaving it the ranks agree (:meth:`check`) whether any of them failed.

        ``what`` names the work in the error; ``same()`` (evaluated after the body) is a description that must
        be identical on every rank. KeyboardInterrupt is not caught (it ends every rank anyway)."""
        try:
            yield
        except (Exception, SystemExit) as exc:
            self.check(exc, what)
            raise  # reached with one rank only, where check re-raised the original
        self.check(None, what, None if same is None else same())

    def on_root(self, what: str, work: Callable[[], T], root: int = 0) -> T | None:
        """``work()`` on ``root`` only (a file only rank 0 writes), its outcome agreed by every rank: an error on
        the root is raised everywhere. Returns the result on the root, None elsewhere."""
        result: T | None = None
        with self.guard(what):
            if self.rank == root:
                result = work()
        return result


@contextmanager
def every_rank(comm: Any, what: str, same: Callable[[], str] | None = None) -> Iterator[None]:
    """:meth:`Agreement.guard` on ``comm`` for one-off work (initialisation, restarts)."""
    with Agreement(comm).guard(what, same):
        yield


def on_root(comm: Any, what: str, work: Callable[[], T], root: int = 0) -> T | None:
    """:meth:`Agreement.on_root` on ``comm`` for one-off work."""
    return Agreement(comm).on_root(what, work, root)


def abort_unagreed(exc: BaseException) -> None:
    """Last resort for an error that was not agreed while other ranks may be waiting in a collective: ``MPI_Abort``
    on COMM_WORLD when it has more than one rank (nothing when MPI was never started or the error was agreed)."""
    if getattr(exc, "agreed", False) or "mpi4py.MPI" not in sys.modules:
        return
    from mpi4py import MPI

    if MPI.Is_initialized() and not MPI.Is_finalized() and MPI.COMM_WORLD.Get_size() > 1:
        sys.stderr.flush()
        MPI.COMM_WORLD.Abort(1)
