"""Every command, positional and option of the command line has help text, and `--version` answers."""

import argparse

import pytest

import kerasviz as kv
from kerasviz.cli.main import build_parser, main


def _commands():
    parser = build_parser()
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for action in subparsers:
        yield from action.choices.items()


@pytest.mark.parametrize("name, command", list(_commands()), ids=lambda x: x if isinstance(x, str) else "")
def test_every_argument_has_help(name, command):
    missing = [a.dest for a in command._actions
               if not isinstance(a, argparse._HelpAction) and not (a.help and a.help.strip())
               and a.help is not argparse.SUPPRESS]
    assert missing == [], f"kerasviz {name}: no help for {missing}"


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"kerasviz {kv.__version__}"
