"""A requirements file's pip option lines that the target's own pip arguments already give.

A file's `--no-index` (or `--find-links DIR`, `--index-url URL`, `--pre`) is refused where it would change where
packages come from or which versions are picked (spec.settings_advice says to put it in the cluster's pip arguments).
Where those arguments already hold the same option with the same value, the line changes nothing: the plan accepts it
and says so (user trial T20: a `--no-index` line was refused, its hint saying to add to the cluster's pip arguments
what was there already).
"""
from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import replace

from .. import spec as specs
from ..spec import EnvSpec

_LONG = {"-i": "--index-url", "-f": "--find-links"}
"""pip's short options, as their long names."""


def _words(args: Sequence[str]) -> list[str]:
    """Options and values one a word, each option by its long name: `--find-links=/w` and `-f/w` as
    ['--find-links', '/w']."""
    words = []
    for arg in args:
        if arg.startswith("--") and "=" in arg:
            words += arg.split("=", 1)
        elif arg[:2] in _LONG and len(arg) > 2 and not arg.startswith("--"):
            words += [arg[:2], arg[2:]]
        else:
            words.append(arg)
    return [_LONG.get(word, word) for word in words]


def already_given(line: str, pip_args: Sequence[str]) -> bool:
    """Whether the option line `line` (with its value, if any) stands as it is in `pip_args`."""
    try:
        said = _words(shlex.split(line))
    except ValueError:  # an unclosed quote: not a line pip arguments can hold
        return False
    have = _words(pip_args)
    return bool(said) and said[0].startswith("-") and any(have[at:at + len(said)] == said
                                                          for at in range(len(have) - len(said) + 1))


def accept_options_given(spec: EnvSpec, pip_args: Sequence[str], where: str) -> EnvSpec:
    """`spec` with each refused option line that `pip_args` (those of the target called `where`) already give
    accepted, as a line that installs nothing and changes nothing there."""
    given = [refused for refused in spec.refused
             if refused.line.startswith("-") and already_given(refused.line, pip_args)]
    if not given:
        return spec
    return replace(spec, refused=[refused for refused in spec.refused if refused not in given],
                   adapted=[*spec.adapted, *(specs.Adapted(refused.line, f"already in {where}'s pip arguments",
                                                           "the line changes nothing there", installs=False)
                                             for refused in given)])
