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

import atexit
import sys
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np

from tamrl_coupler import signals
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


def agreed_error(reports: list[tuple[str, str, bool] | tuple[str, str, bool, str] | None], what: str,
                 rank: int) -> TamrlError:
    """The error every rank raises, from each rank's report: None (no failure) or (type name, message, whether
    the type is one of the product's[, that rank's ``what``]). The first failing rank's ``what`` is used when
    given, so that the text is the same on every rank even where the ranks' calls differ."""
    failed = [r for r, rep in enumerate(reports) if rep is not None]
    type_name, message, is_product, *theirs = reports[failed[0]]  # type: ignore[misc]
    what = theirs[0] if theirs else what
    cls = _product_types().get(type_name, RankFailure) if is_product else RankFailure
    if type_name == "MemoryError":  # a memory condition, named as such (its own message is usually empty)
        message = f"out of memory on rank {failed[0]} (MemoryError{': ' + message if message else ''})"
    elif not is_product:
        message = f"{type_name}: {message}"
    text = f"{what}: {message} (every rank stopped: {_ranks(failed)} of {len(reports)} failed)"
    try:
        err = cls(text)
    except TypeError:  # a product type with another constructor
        err = RankFailure(text)
    return _mark(err, failed, rank)


def _checksum(text: str) -> int:
    return zlib.crc32(text.encode())  # the same in every process (Python's hash() is salted per process)


_STOP_RANK_BITS = 20  # the stop word: signal number << 20 | rank (the highest signal wins, then the highest rank)


class Agreement:
    """The ranks of ``comm`` agreeing, before a collective, that nobody failed (see the module docstring).

    One ``Allreduce`` (MAX) of eight integers carries everything the ranks must agree on at that point: whether any
    rank failed; the largest and smallest checksum of a description that must be the same everywhere; a stop
    request (a signal received by some rank, :mod:`tamrl_coupler.signals`); and, when the caller gives one, the
    largest and smallest coupling time and step length (every rank must step the same clock). Keeps its buffers, so
    a guarded coupling step allocates no arrays for the agreement.

    ``stop``: the stop signal agreed by every rank (0: none), ``stop_rank`` the rank that received it; both the
    same on every rank after each check, kept until :meth:`clear_stop`."""

    def __init__(self, comm: Any):
        self.comm = comm
        self.size = 1 if comm is None else comm.Get_size()
        self.rank = 0 if comm is None else comm.Get_rank()
        self._send = np.zeros(8, dtype=np.int64)
        self._recv = np.zeros(8, dtype=np.int64)
        self.stop = 0
        self.stop_rank = 0

    def clear_stop(self) -> None:
        """Every rank acted on the stop request: forget it (here and in this process's signal flag)."""
        self.stop = self.stop_rank = 0
        signals.clear()

    def _note_stop(self, word: int) -> None:
        if word and not self.stop:
            self.stop, self.stop_rank = word >> _STOP_RANK_BITS, word & ((1 << _STOP_RANK_BITS) - 1)

    def check(self, error: BaseException | None, what: str, same: str | None = None,
              clock: tuple[int, int] | None = None, clock_label: Callable[[int], str] | None = None) -> None:
        """Collective: raise on every rank when ``error`` is not None on any rank, when ``same`` (a text that
        must be identical on every rank) differs between ranks, or when ``clock`` (time, step length in seconds)
        differs between ranks; otherwise return. ``clock_label(t)`` is how this rank names its time in the error
        (its step, a date)."""
        local_stop = signals.requested()
        word = (local_stop << _STOP_RANK_BITS) | self.rank if local_stop else 0
        if self.size == 1 or getattr(error, "agreed", False):  # an agreed error is being raised by every rank
            if error is not None:
                raise error
            self._note_stop(word)
            return
        from mpi4py import MPI

        s = self._send
        s[0] = 0 if error is None else 1
        s[1] = 0 if same is None else _checksum(same)
        s[2] = -s[1]
        s[3] = word
        t, dt = (0, 0) if clock is None or error is not None else clock
        s[4], s[5], s[6], s[7] = t, -t, dt, -dt
        self.comm.Allreduce(s, self._recv, op=MPI.MAX)
        r = self._recv
        self._note_stop(int(r[3]))
        if r[0]:
            report = None if error is None else (type(error).__name__, str(error), isinstance(error, TamrlError),
                                                 what)
            raise agreed_error(self.comm.allgather(report), what, self.rank) from error
        if r[1] != -r[2]:
            seen = self.comm.allgather((same, what))
            detail = "; ".join(f"rank {k}: {v}" for k, (v, _) in enumerate(seen))
            raise _mark(InputError(f"{seen[0][1]}: the ranks differ where they must agree ({detail})"),
                        list(range(self.size)), self.rank)
        if r[4] != -r[5] or r[6] != -r[7]:
            mine = (t, dt, clock_label(t) if clock_label else f"t = {t} s", what)
            clocks = self.comm.allgather(mine)  # each rank names its own time (its step count, its date)
            detail = "; ".join(f"rank {k}: {c[2]}, dt = {c[1]} s" for k, c in enumerate(clocks))
            differ = [k for k, c in enumerate(clocks) if c[:2] != clocks[0][:2]]
            raise _mark(InputError(f"{clocks[0][3]}: the ranks' coupling clocks disagree ({detail}); every rank "
                                   f"must step the same time and step length (every rank stopped)"), differ,
                        self.rank)

    @contextmanager
    def guard(self, what: str, same: Callable[[], str] | None = None,
              clock: Callable[[], tuple[int, int] | None] | None = None,
              clock_label: Callable[[int], str] | None = None) -> Iterator[None]:
        """Run the body on each rank; on leaving it the ranks agree (:meth:`check`) whether any of them failed.

        ``what`` names the work in the error; ``same()`` (evaluated after the body) is a description that must
        be identical on every rank; ``clock()`` (after the body) the step's (time, length) every rank must share.
        Every exception is agreed, ``BaseException`` included: a ``SystemExit`` or ``KeyboardInterrupt`` on one
        rank becomes the same :class:`RankFailure` on every rank (with one rank it propagates unchanged)."""
        try:
            yield
        except BaseException as exc:
            self.check(exc, what)
            raise  # reached with one rank only, where check re-raised the original
        self.check(None, what, None if same is None else same(), None if clock is None else clock(), clock_label)

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
        # said by us before the launcher may kill this process: MPICH's own MPI_Abort line can be lost in that race
        print(f"tamrl-coupler: rank {MPI.COMM_WORLD.Get_rank()} of {MPI.COMM_WORLD.Get_size()}: "
              f"{type(exc).__name__} was not agreed by every rank: ending the job with MPI_Abort so that no rank "
              f"waits in a collective", file=sys.stderr, flush=True)
        MPI.COMM_WORLD.Abort(1)


EXIT_GRACE = 10.0  # s a leaving rank waits for the others to leave too before it ends the job ($TAMRL_EXIT_GRACE)
_watched: list[tuple[Any, Callable[[], bool]]] = []


class ExitWatch:
    """Whether something that takes part in collectives (a coupling component) is still live: true until
    :meth:`done` (its finalise), whether or not its owner still holds it."""

    def __init__(self) -> None:
        self.live = True

    def done(self) -> None:
        self.live = False

    def __call__(self) -> bool:
        return self.live


def watch_exit(comm: Any, live: Callable[[], bool]) -> None:
    """Collective (duplicates ``comm``): when this process leaves Python while ``live()`` -- a component not yet
    finalised (:class:`ExitWatch`) -- and the other ranks of ``comm`` do not leave too within EXIT_GRACE seconds,
    end the job with ``MPI_Abort`` instead of leaving them waiting in a collective forever.

    Why: ``sys.exit``, an uncaught exception or a ``KeyboardInterrupt`` on one rank of a Python host, outside
    anything the component can agree on, would otherwise end that process in ``MPI_Finalize`` while the others
    wait in the next step's collective until the wall-clock limit. The ranks' exits meet in a non-blocking
    barrier on a communicator of their own, so a normal end on every rank costs nothing."""
    if comm is None or comm.Get_size() == 1:
        return
    if not _watched:
        atexit.register(_at_exit)
    _watched.append((comm.Dup(), live))


def _at_exit() -> None:
    import os
    import time

    live = [(c, f) for c, f in _watched if f()]
    _watched.clear()
    if not live or "mpi4py.MPI" not in sys.modules:
        return
    from mpi4py import MPI

    if not MPI.Is_initialized() or MPI.Is_finalized():
        return
    grace = float(os.environ.get("TAMRL_EXIT_GRACE", EXIT_GRACE))
    requests = [c.Ibarrier() for c, _ in live]
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if MPI.Request.Testall(requests):
            return
        time.sleep(0.01)
    rank = MPI.COMM_WORLD.Get_rank()
    print(f"tamrl-coupler: rank {rank} is leaving with its coupling component still live (not finalised) and the "
          f"other ranks did not leave within {grace:g} s (an uncaught error, sys.exit or an interrupt on some ranks "
          f"only): ending the job with MPI_Abort so that no rank waits in a collective forever", file=sys.stderr,
          flush=True)
    MPI.COMM_WORLD.Abort(1)
