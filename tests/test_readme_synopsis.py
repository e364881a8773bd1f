"""README's command-line synopsis against the installed command line's own parser: every subcommand the
parser takes is in the synopsis, with every option it takes (a trial reading the README missed --python,
--other-builds, cluster edit and more)."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from envdesk.cli import build_parser

README = Path(__file__).resolve().parent.parent / "README.md"


def synopsis() -> str:
    """The fenced block that follows README's "## Command line" heading."""
    section = README.read_text(encoding="utf-8").split("\n## Command line\n", 1)[1]
    return section.split("```", 2)[1]


def commands(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()):
    """(words, options) for each leaf subcommand of parser."""
    subparsers = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    if not subparsers:
        yield words, [option for action in parser._actions for option in action.option_strings
                      if option not in ("-h", "--help")]
        return
    for name, child in subparsers[0].choices.items():
        yield from commands(child, (*words, name))


def entry(text: str, words: tuple[str, ...]) -> str:
    """The synopsis entry of one subcommand: its line and the indented lines that continue it."""
    pattern = r"^envdesk (?:\[--config-dir DIR\] )?" + re.escape(" ".join(words)) + r"\b.*(?:\n {8}.*)*"
    found = re.search(pattern, text, re.MULTILINE)
    return found.group(0) if found else ""


def test_every_subcommand_and_option_is_in_the_synopsis():
    text = synopsis()
    leaves = list(commands(build_parser()))
    assert len(leaves) > 20
    missing = {}
    for words, options in leaves:
        block = entry(text, words)
        absent = [option for option in options if not re.search(re.escape(option) + r"(?![\w-])", block)]
        if not block or absent:
            missing[" ".join(words)] = absent if block else "no synopsis line"
    assert missing == {}


def test_the_top_level_options_are_in_the_synopsis():
    text = synopsis()
    top = [option for action in build_parser()._actions for option in action.option_strings
           if option not in ("-h", "--help")]
    assert "--config-dir" in top
    assert [option for option in top if not re.search(re.escape(option) + r"(?![\w-])", text)] == []
