"""The ``tamrl-coupler`` command line: one subcommand per module in :mod:`tamrl_coupler.commands`.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int`` and
keeps heavy imports inside ``run`` so that ``--help`` stays fast. A command that runs under ``mpiexec`` says so with
``MPI = True``; any other is refused when launched on more than one rank (each rank would do the whole work and
write the same files).

Every command takes ``--quiet`` and ``--verbose`` (:func:`tamrl_coupler.commands.add_common_arguments`): what the
command reports goes to standard output, the messages of its parts (and of libraries: warnings only) to standard
error, both through :mod:`logging` (:func:`configure_logging`). An ``--output`` whose directory does not exist is
refused before any work unless ``--parents`` is given.

Errors: the product's errors are one line on stderr and exit status 1. Under ``mpiexec`` an error every rank
agreed on (tamrl_coupler/parallel.py) is printed once, by rank 0, and every rank exits 1; an error that was not
agreed (other ranks may be waiting in a collective) ends the job with ``MPI_Abort`` as the last resort, so that it
never hangs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from tamrl_coupler import __version__
from tamrl_coupler.commands import CLI_LOGGER, add_common_arguments, check_outputs, log_level

# name -> module; order is the order shown in --help.
COMMANDS: dict[str, str] = {
    "predict": "tamrl_coupler.commands.predict",
    "evaluate": "tamrl_coupler.commands.evaluate",
    "train": "tamrl_coupler.commands.train",
    "cv": "tamrl_coupler.commands.cv",
    "regrid": "tamrl_coupler.commands.regrid",
    "weights": "tamrl_coupler.commands.weights",
    "run": "tamrl_coupler.commands.run",
    "prior": "tamrl_coupler.commands.prior",
    "demo": "tamrl_coupler.commands.demo",
    "testbed": "tamrl_coupler.commands.testbed",
}


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default when it has one (argparse lists the choices in ``{a,b}``); options
    whose default is "not given" say in their own help what happens then."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.option_strings and action.default not in (None, False, argparse.SUPPRESS)
                and "%(default)" not in text and not isinstance(action, (argparse._HelpAction,
                                                                         argparse._VersionAction))):
            text += " (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tamrl-coupler",
        description="TAM-RL carbon fluxes (GPP, Reco, NEE = GPP - Reco) for Earth-system models and offline runs.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # a command not built yet in this checkout
        p = sub.add_parser(name, help=module.HELP, description=getattr(module, "__doc__", None) or module.HELP,
                           formatter_class=HelpFormatter)
        module.add_arguments(p)
        add_common_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "_run"):
        parser.print_help()
        return 2
    configure_logging(log_level(args))
    uses_mpi = getattr(sys.modules[args._run.__module__], "MPI", False)
    try:
        if not uses_mpi:
            refuse_several_ranks(args.command)
        else:
            try:
                from mpi4py import MPI  # noqa: F401  # MPI first: its transport (UCX) takes SIGHUP when it starts
            except ImportError:  # one process without MPI (communicator.py)
                pass
            from tamrl_coupler import signals

            signals.install()  # a batch system's SIGTERM (& co.): finish the step, write a restart, exit 75
        check_outputs(args)
        return int(args._run(args) or 0)
    except BaseException as exc:  # user-facing errors: one clear line, no traceback unless asked
        return _failed(args.command, exc)
    finally:
        if uses_mpi:
            from tamrl_coupler import signals

            signals.uninstall()  # main() may be called in a process that has its own (a test, a notebook)
            signals.clear()


def _failed(command: str, exc: BaseException) -> int:
    """The exit status for ``exc`` after saying what happened once (rank 0 for an error every rank agreed on).
    An error that was not agreed while other ranks may wait in a collective ends the job (MPI_Abort)."""
    from tamrl_coupler.errors import StopRequested, TamrlError
    from tamrl_coupler.parallel import abort_unagreed
    from tamrl_coupler.signals import EXIT_STOPPED

    say = getattr(exc, "comm_rank", 0) == 0  # an agreed error: every rank has it, rank 0 says it
    if isinstance(exc, StopRequested):
        if say:
            print(f"tamrl-coupler {command}: stopped: {exc}", file=sys.stderr, flush=True)
        return EXIT_STOPPED
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        code = 130 if isinstance(exc, KeyboardInterrupt) else exc.code if isinstance(exc.code, int) else 1
        if code:
            print(f"tamrl-coupler {command}: {type(exc).__name__} ({exc}); stopping", file=sys.stderr, flush=True)
            abort_unagreed(exc)
        return code
    expected = isinstance(exc, (TamrlError, ValueError, OSError, MemoryError))
    if expected and "TAMRL_TRACEBACK" not in os.environ:
        if say:
            print(f"tamrl-coupler {command}: error: {describe_error(exc)}", file=sys.stderr, flush=True)
        abort_unagreed(exc)
        return 1
    print(f"tamrl-coupler {command}: unexpected error (a bug; please report it):", file=sys.stderr)
    import traceback

    traceback.print_exception(type(exc), exc, exc.__traceback__)
    abort_unagreed(exc)
    return 1


def describe_error(exc: BaseException) -> str:
    """The one line a user reads: the product's message, or for an OS or memory condition what happened."""
    if isinstance(exc, MemoryError):
        return f"out of memory ({exc or 'MemoryError'}): the machine cannot hold what was asked for"
    return str(exc)


class _Format(logging.Formatter):
    """The command's own reports as they are; other messages with their source, warnings and errors marked."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.name == CLI_LOGGER:
            return text
        mark = f"{record.levelname.lower()}: " if record.levelno >= logging.WARNING else ""
        return f"{mark}{record.name}: {text}"


_HANDLER_MARK = "_tamrl_cli_handler"


def configure_logging(level: int = logging.INFO) -> None:
    """The product's messages at ``level`` (the command's reports on stdout, the rest on stderr), other libraries'
    warnings only (their debug messages too with DEBUG), Python warnings through logging. Idempotent: a second call
    (tests run several commands in one process) replaces what the first installed."""
    root = logging.getLogger()
    for h in [h for lg in (root, logging.getLogger(CLI_LOGGER)) for h in lg.handlers if hasattr(h, _HANDLER_MARK)]:
        for lg in (root, logging.getLogger(CLI_LOGGER)):
            lg.removeHandler(h)
    for logger, stream in ((root, sys.stderr), (logging.getLogger(CLI_LOGGER), sys.stdout)):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(_Format("%(message)s"))
        setattr(handler, _HANDLER_MARK, True)
        logger.addHandler(handler)
    logging.getLogger(CLI_LOGGER).propagate = False
    root.setLevel(logging.DEBUG if level <= logging.DEBUG else logging.WARNING)
    logging.getLogger("tamrl_coupler").setLevel(level)
    logging.captureWarnings(True)


def refuse_several_ranks(command: str) -> None:
    """A command without MPI support launched on several ranks would run whole on each and write the same files:
    an error instead (every rank has it; the launcher's rank 0 prints it)."""
    from tamrl_coupler.communicator import launched_rank, launched_size
    from tamrl_coupler.errors import InputError

    size = launched_size()
    if size > 1:
        rank = launched_rank()
        err = InputError(f"'{command}' runs on one process, but was launched on {size} ranks (every rank would do the "
                         f"whole work and write the same files); run it without mpiexec")
        err.comm_rank = rank  # type: ignore[attr-defined]
        err.agreed = True  # type: ignore[attr-defined]  # every rank raises it, nobody waits: no MPI_Abort
        raise err


if __name__ == "__main__":
    sys.exit(main())
