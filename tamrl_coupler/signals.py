"""Stop requests from the batch system: SIGTERM, SIGINT, SIGHUP and SIGUSR1 become a flag, never an exception.

Why: a batch system sends SIGTERM (Slurm's ``--signal``: often SIGUSR1; a terminal: SIGINT or SIGHUP) some time
before it kills a job. Python's default reaction -- ``KeyboardInterrupt`` raised at whatever line the rank is on, or
the process ending at once -- leaves the other ranks waiting in a collective until the wall-clock limit, and the
run's progress since the last restart is lost. With :func:`install` the signal only records which signal arrived;
the ranks' agreement (:mod:`tamrl_coupler.parallel`) carries the flag to every rank in the ``Allreduce`` it makes
anyway, so every rank learns of it at the same point, finishes the current coupling step, writes a restart and
stops with :data:`EXIT_STOPPED` (the CLI) or ``TAMRL_STOPPED`` (the Fortran bridge).

The policy is the same for the four signals (docs/reliability.md). SIGKILL cannot be caught: files stay safe
(atomic writes), the run continues from its last restart.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterable

STOP_SIGNALS: tuple[str, ...] = ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1")
EXIT_STOPPED = 75  # the CLI's exit status after a stop on a signal (EX_TEMPFAIL: continue from the restart)

_requested = 0  # the first stop signal received by this process (0: none)
_installed: dict[int, object] = {}


def _handler(signum: int, frame: object) -> None:
    global _requested
    if not _requested:
        _requested = signum


def install(names: Iterable[str] = STOP_SIGNALS, only_default: bool = False) -> list[str]:
    """Turn each of ``names`` into a stop request for this process; returns the names installed. With
    ``only_default``, a signal someone else already handles (a Fortran host's own handler) is left alone. Only the
    main thread can install handlers: elsewhere (a host's worker thread) nothing is installed and [] is returned."""
    if threading.current_thread() is not threading.main_thread():
        return []
    done = []
    for name in names:
        sig = getattr(signal, name, None)
        if sig is None:  # not on this platform
            continue
        if sig not in _installed:
            current = signal.getsignal(sig)
            if only_default and current not in (signal.SIG_DFL, signal.default_int_handler):
                continue
            _installed[sig] = signal.signal(sig, _handler)
        done.append(name)
    return done


def uninstall() -> None:
    """Give back the handlers :func:`install` replaced (tests; a host that wants its own back)."""
    for sig, previous in list(_installed.items()):
        if threading.current_thread() is threading.main_thread():
            signal.signal(sig, previous)  # type: ignore[arg-type]
        del _installed[sig]


def requested() -> int:
    """The stop signal this process received (its number), 0 when none."""
    return _requested


def clear() -> None:
    """Forget a stop request (after every rank acted on it)."""
    global _requested
    _requested = 0


def request(signum: int = int(signal.SIGTERM)) -> None:
    """Record a stop request as if ``signum`` had arrived (tests, and hosts that learn of the end otherwise)."""
    _handler(signum, None)


def name(signum: int) -> str:
    """``15`` -> ``"SIGTERM"``."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
