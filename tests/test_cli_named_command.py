"""The command line builds the parser of the one subcommand it is given, when it names one plainly (issue 11:
building all of them took ~5 ms of every command). Referee: the whole parser, as `envdesk --help` builds it: for
command lines right and wrong (help, usage errors, abbreviations, options before the group), the parser built
for those words prints, exits and reads the same."""
from __future__ import annotations

import contextlib
import io
import itertools
from typing import Any

import pytest

from envdesk.cli import build_parser, named_command

VERBS = {"cluster": ["add", "edit", "list", "remove", "trust", "test"], "key": ["create", "status"],
         "env": ["list", "show", "diff", "create", "update", "history", "revert", "jobscript", "export", "import",
                 "clone", "doctor", "delete"],
         "kernel": ["add", "list", "remove"], "disk": []}
PLAIN = [[], ["-v", "--config-dir", "/c"], ["--config-dir=/c"], ["--config-dir", "env"]]
UNPLAIN = [["--config-dir", "-x"], ["--conf", "/c"], ["-h"], ["--version"], ["--"]]  # the whole parser reads these
AFTER = [[], ["-h"], ["local"], ["local", "x"], ["local", "x", "--kind", "uv", "--requirements", "r.txt", "-q"],
         ["local", "x", "y", "z"], ["--bogus"], ["local", "x", "--json"], ["a:b", "c:d", "--make-like", "--yes"],
         ["local", "x", "--add", "a", "--remove", "b"], ["local", "x", "--format", "conda-history"],
         ["local", "x", "--format", "bogus"], ["local", "--clean", "uv", "--yes"],
         ["name", "--host", "h", "--port", "22", "--preset", "alliance", "--user", "u"],
         ["name", "--account", "", "--conda-channel", "", "--build-on-login-node"], ["--kind", "bogus", "local", "x"],
         ["local", "x", "--pack", "numpy"], ["local", "x", "-h"]]


def command_lines() -> list[list[str]]:
    lines: list[list[str]] = [[], ["evn", "create", "local", "x"], ["env", "-v", "create", "local", "x"],
                              ["env", "create", "local", "x", "--", "-y"]]
    for before, (group, verbs) in itertools.product(PLAIN + UNPLAIN, VERBS.items()):
        afters = AFTER if before in PLAIN else AFTER[:3]
        lines.append(before + [group])
        lines.extend(before + [group] + after for after in afters[:6])
        lines.extend(before + [group, verb] + after for verb in [*verbs, "bogus", "-h"] for after in afters)
    return lines


def outcome(parser_for: Any, words: list[str]) -> tuple[Any, ...]:
    """What parsing `words` gives: the exit status (None when it read them), what was printed, what was read."""
    printed, errors = io.StringIO(), io.StringIO()
    status, read = None, None
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        try:
            read = vars(parser_for(words).parse_args(words))
        except SystemExit as stop:
            status = stop.code
    return status, printed.getvalue(), errors.getvalue(), read


def test_the_parser_built_for_the_words_reads_them_as_the_whole_parser(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")  # help is wrapped to the terminal's width: the same for both
    whole = build_parser()
    outcomes = {tuple(words): outcome(build_parser, words) for words in command_lines()}
    assert [words for words, got in outcomes.items() if got != outcome(lambda _: whole, list(words))] == []
    statuses = [status for status, *_ in outcomes.values()]
    assert statuses.count(None) > 150 and statuses.count(2) > 2000 and statuses.count(0) > 500  # read, refused, help


@pytest.mark.parametrize("words, named", [
    (["env", "create", "local", "x"], ("env", "create")),
    (["-v", "--config-dir", "/c", "--config-dir=/d", "disk", "local"], ("disk", None)),
    (["--config-dir", "env", "kernel", "list", "local"], ("kernel", "list")),
    (["env", "-h"], ("env", None)),
    (["env", "creat"], ("env", None)),
    (["--conf", "/c", "env", "create"], None),
    (["--config-dir", "-x", "env", "create"], None),
    (["--help"], None),
    ([], None),
])
def test_the_command_named(words, named):
    assert named_command(words) == named


def test_a_parser_built_for_one_subcommand_knows_no_other():
    words = ["env", "create", "local", "x"]
    assert vars(build_parser(words).parse_args(words))["handler"] == "env_create"
    for other in (["env", "list", "local"], ["cluster", "list"], ["disk", "local"]):
        assert outcome(lambda _: build_parser(words), other)[0] == 2
        assert outcome(build_parser, other)[0] is None
