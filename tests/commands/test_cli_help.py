"""``--help`` of every command says, for every option, what it does, its default and its choices."""

from __future__ import annotations

import argparse

import pytest

from tamrl_coupler.cli import COMMANDS, build_parser


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_is_there():
    assert set(_subparsers()) == set(COMMANDS)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_shows_defaults_and_choices_of_every_option(command):
    parser = _subparsers()[command]
    required_groups = {id(a) for g in parser._mutually_exclusive_groups if g.required for a in g._group_actions}
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
            continue
        formatter = parser._get_formatter()
        formatter.add_argument(action)
        shown = " ".join(formatter.format_help().split())
        name = action.option_strings[0]
        assert action.help, f"{command} {name}: no help text"
        if action.choices:
            assert "{" + ",".join(map(str, action.choices)) + "}" in shown, f"{command} {name}: choices not shown"
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)) or action.required or \
                id(action) in required_groups:
            continue
        if action.default is None:  # not given: the help says what happens then
            assert "default:" in shown, f"{command} {name}: the help does not say what happens when it is not given"
        else:
            assert f"(default: {action.default})" in shown, f"{command} {name}: default {action.default!r} not shown"
