"""What an environment's modules put on PYTHONPATH, in words: the packages they provide and the environment's own
packages they hide.

A module such as the Alliance's scipy-stack prepends PYTHONPATH with a folder of packages (T20). Python looks
there before the environment's site-packages, so those are the versions it imports, pip list and pip freeze
list, and pip's "already satisfied" counts; a package of the same name that the environment holds itself is
never imported. The agent reads those folders with an environment's details (Environment.provided, see
operations/module_paths); this module says what that means for the environment shown, changed or copied.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .inventory import Environment, Package
from .validate import canonical_name


@dataclass(frozen=True)
class Shadowed:
    """One of the environment's own packages that Python does not import: `module` puts `imported` first."""

    own: Package
    module: str
    imported: Package

    def sentence(self) -> str:
        return (f"{self.own.name} {self.own.version} of the environment is not what Python imports: {self.module} "
                f"puts {self.imported.name} {self.imported.version} before it on PYTHONPATH")


def module_packages(env: Environment) -> dict[str, tuple[str, Package]]:
    """Each package the environment's modules put on PYTHONPATH, by canonical name, with the module that puts it
    there: the copy Python finds first (the agent lists each name once, where it is found first)."""
    found: dict[str, tuple[str, Package]] = {}
    for provided in env.provided:
        for package in provided.packages:
            found.setdefault(canonical_name(package.name), (provided.module, package))
    return found


def shadowed(env: Environment) -> list[Shadowed]:
    """The environment's own packages that a module's copy hides, in the order of its packages."""
    modules = module_packages(env)
    return [Shadowed(own, *modules[canonical_name(own.name)]) for own in env.packages
            if canonical_name(own.name) in modules]


def listed(packages: Iterable[Package]) -> str:
    """'tinyalpha 1.1, tinysci 1.11.4'."""
    return ", ".join(f"{package.name} {package.version}" for package in packages)


def provided_lines(env: Environment) -> list[str]:
    """One line per module that puts packages on PYTHONPATH: the module, its folder and what Python imports there."""
    return [f"{provided.module} ({provided.path}): {listed(provided.packages)}"
            for provided in env.provided if provided.packages]


def provided_pins(env: Environment) -> dict[str, list[str]]:
    """module -> ['name==version', ...] of what each of its modules provides, as an envdesk.yaml records it."""
    return {provided.module: [f"{p.name}=={p.version}" for p in provided.packages]
            for provided in env.provided if provided.packages}


def change_notes(after: Environment, asked: Iterable[str]) -> list[str]:
    """What a change that asked for the packages named `asked` should say about the environment's modules:
    nothing installed because a module's folder already satisfied it (pip counts PYTHONPATH), or installed in the
    environment but hidden by a module's copy (T20: numpy 1.25.2 was installed and scipy-stack's 1.26.4 was still
    what Python imported; env show listed 1.25.2)."""
    notes = []
    own = {canonical_name(package.name): package for package in after.packages}
    modules = module_packages(after)
    for name in dict.fromkeys(canonical_name(name) for name in asked):
        if name not in modules:
            continue
        module, package = modules[name]
        if name in own:
            notes.append(Shadowed(own[name], module, package).sentence() + ". Remove the environment's own copy "
                         f"(envdesk env update --remove {own[name].name}) to use the module's, or make the environment "
                         f"without {module} to use its own.")
        else:
            notes.append(f"{module} already provides {package.name} {package.version} (on PYTHONPATH, which Python "
                         "and pip look in before the environment's own packages), so the installer had nothing to do "
                         "for it: it is not in the environment itself.")
    return notes


def left_out_notes(provided: dict[str, list[str]], dropped: Iterable[str], pins: Iterable[str]) -> list[str]:
    """What a copy or import that leaves out modules (`dropped`) loses of what they provided on the source
    (`provided`: EnvSpec.provided), the packages the copy installs itself (`pins`, 'name==version') apart: T20's
    copy to a cluster without scipy-stack had no scipy or matplotlib, and said only that the module was left out."""
    own = {canonical_name(pin.partition("==")[0]): pin.partition("==")[2] for pin in pins}
    notes = []
    for module in dropped:
        lacking, other = [], []
        for pin in provided.get(module) or ():
            name, _, version = pin.partition("==")
            if canonical_name(name) not in own:
                lacking.append(f"{name} {version}")
            elif own[canonical_name(name)] != version:
                other.append(f"{name} {own[canonical_name(name)]} (not {version})")
        if lacking:
            notes.append(f"{module} provided {', '.join(lacking)} on the source (on PYTHONPATH), which this "
                         f"environment does not have: importing {'it' if len(lacking) == 1 else 'them'} here fails. "
                         "Add what it needs (Update, or envdesk env update --add NAME), or copy it to a cluster that "
                         f"has {module}.")
        if other:
            notes.append(f"Without {module}, Python here imports the environment's own {', '.join(other)}, "
                         f"where {module}'s were imported on the source.")
    return notes
