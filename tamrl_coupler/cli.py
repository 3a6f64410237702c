"""The ``tamrl-coupler`` command line: one subcommand per module in :mod:`tamrl_coupler.commands`.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int`` and
keeps heavy imports inside ``run`` so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from tamrl_coupler import __version__

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
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "_run"):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # user-facing errors: one clear line, no traceback unless asked
        from tamrl_coupler.errors import TamrlError

        expected = isinstance(exc, (TamrlError, ValueError, FileNotFoundError))
        if expected and "TAMRL_TRACEBACK" not in os.environ:
            print(f"tamrl-coupler {args.command}: error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
