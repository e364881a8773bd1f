"""A site's own builds: exact pins with a local version label, such as the Digital Research Alliance of Canada's
`numpy==1.26.4+computecanada`, and the public release another target has in their place.

PEP 440: `==1.26.4` matches `1.26.4` and every local build of it (`1.26.4+computecanada`), but `==1.26.4+computecanada`
matches that build alone. So where a target lacks the site's build but has the release, the pin without its label
installs the release (or the site's build, where a store has it). The import's check tries that form for each such pin
it finds missing, in the same command (importing._check_script), and the plan installs it, saying so, rather than
calling the package missing and offering newer versions (user trial T20).

A label that names a build variant instead (PyTorch's index: torch==2.1.0+cu118, +cpu, +rocm5.6) is not a site's
rebuild of the release but another build: the release is PyPI's build (CPU-only, or another CUDA). Such a pin is
installed as its release only where the user agreed (--other-builds, or the window's choice); until then it is
listed as not available, saying what would change (F18).
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .. import spec as specs

if TYPE_CHECKING:
    from .importing import ImportPlan

_LABELLED = re.compile(r"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)(?P<extras>\s*\[[^\]]*\])?\s*==\s*"
                       r"(?P<release>[0-9][A-Za-z0-9._!-]*)\+(?P<label>[A-Za-z0-9][A-Za-z0-9._]*)"
                       r"(?P<marker>\s*;.*)?$")
"""An exact pin of a local build: its name, extras, public release, label and marker (a URL, a range, `===` or hashes
do not match: a hash names the site's file, which the release's file is not)."""

SITES = {"computecanada": "the Alliance's"}
"""Who makes the builds a label names, where it is known (the Alliance's wheelhouse labels its own builds so)."""


_VARIANT = re.compile(r"(?:pt\d+|torch\d+)?(?:cu\d+|cuda\d*|cpu|rocm\d*|xpu|hip\d*)[a-z0-9]*"
                      r"|gpu|nogpu|tpu|mkl|openblas|openvino|tensorrt|avx\d*|sse\d*|neon|noavx")
"""One part of a local label (PEP 440's, split at its dots) that names a build variant: an accelerator (cu118, cpu,
rocm5 of rocm5.6, xpu, PyTorch Geometric's pt21cu118, MXNet's cu112mkl, faiss's gpu, tpu, openvino, tensorrt), a
maths library (mkl, openblas) or an instruction set (avx2) (R18: +gpu and +mkl were swapped silently)."""


def label_of(line: str) -> str | None:
    """The local label of the line's exact pin, normalized as PEP 440 has it (packaging's Version.local: lower case,
    '-' and '_' as '.'); None for a line that pins no local build."""
    from packaging.version import InvalidVersion, Version
    match = _LABELLED.match(line.strip())
    if match is None:
        return None
    try:
        return Version(f"{match['release']}+{match['label']}").local
    except InvalidVersion:
        return None


def other_build(line: str) -> bool:
    """Whether the line pins a build variant (torch==2.1.0+cu118) rather than a site's rebuild of the release
    (numpy==1.26.4+computecanada): its release is a different build, installed in its place only with the user's
    agreement."""
    label = label_of(line)
    return label is not None and any(_VARIANT.fullmatch(part) for part in label.split("."))


def public_release(line: str) -> str | None:
    """The line with its exact pin's local label taken off ('numpy==1.26.4+computecanada ; python_version >= "3.8"'
    -> 'numpy==1.26.4 ; python_version >= "3.8"'), its extras and marker kept; None for a line that pins no local
    build."""
    match = _LABELLED.match(line.strip())
    if match is None:
        return None
    marker = f" ; {match['marker'].strip()[1:].strip()}" if match["marker"] else ""
    extras = (match["extras"] or "").strip()
    return f"{match['name']}{extras}=={match['release']}{marker}"


def why_public(line: str) -> str:
    """Why `line` is installed as its public release, in the plan's words: "the Alliance's build numpy
    1.26.4+computecanada is not here; numpy 1.26.4 is"."""
    match = _LABELLED.match(line.strip())
    if match is None:
        return "that build is not here; its public release is"
    if other_build(line):
        return (f"the {match['label']} build {match['name']} {match['release']}+{match['label']} is not here; "
                f"{match['name']} {match['release']} is, a different build, installed as you agreed")
    owner = SITES.get(match["label"].lower(), "the")
    name, release = match["name"], match["release"]
    return f"{owner} build {name} {release}+{match['label']} is not here; {name} {release} is"


def public_found(stdout: str, pins: list[str]) -> dict[str, str]:
    """The pins a check's output (importing._check_script, given `pins`) found missing as a site's build but
    here as their public release: pin -> release."""
    found = {}
    for line in stdout.splitlines():
        number = line[len("@@public "):].strip()
        if line.startswith("@@public ") and number.isdigit() and int(number) < len(pins):
            pin = pins[int(number)]
            found[pin] = public_release(pin) or pin
    return found


OTHER_BUILD = ": installed in its place only if you agree"
"""How the reason of a build variant's pin left out ends (why_withheld)."""


def why_withheld(line: str) -> str:
    """Why a pin of a build variant whose release is here is not installed without the user's agreement."""
    match = _LABELLED.match(line.strip())
    name, release, label = (match["name"], match["release"], match["label"]) if match else (line, "", "")
    return (f"the {label} build is not here; {name} {release} is, but it is a different build (PyPI's, not "
            f"{label}){OTHER_BUILD}")


def install_public_releases(plan: ImportPlan, found: dict[str, str], other_builds: bool = False) -> list[str]:
    """Install the public release in place of each of the plan's pins of a site's own build in `found` (a check's
    Availability.public): moved from its pins to its adapted lines, which say why, and its requirements following
    (what the environment records as asked for). A pin of a build variant (other_build) is moved only where the
    user agreed (`other_builds`); else it stays, and is kept in plan.other_builds. The pins changed; `found`'s
    others are not the plan's."""
    plan.other_builds.update({line: found[line] for line in plan.pins
                              if line in found and other_build(line) and not other_builds})
    found = {line: release for line, release in found.items() if line not in plan.other_builds}
    moved = [line for line in plan.pins if line in found]
    plan.pins = [line for line in plan.pins if line not in found]
    plan.adapted += [specs.Adapted(line, found[line], why_public(line)) for line in moved]
    plan.public_releases.update({line: found[line] for line in moved})
    releases = set(found.values())
    plan.requirements = [found.get(line) or (public if (public := public_release(line)) in releases else line)
                         for line in plan.requirements]
    return moved
