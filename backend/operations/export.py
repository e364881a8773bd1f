"""Export an environment as a portable EnvSpec, read directly from its folder (no pip or conda needed)."""
from __future__ import annotations

from dataclasses import replace

from ..credentials import split_settings
from ..errors import InvalidInput
from ..inventory import Environment
from ..provided import module_packages, provided_pins
from ..recipes import INSTALLER_PACKAGES, PIP_TO_UV, Step
from ..spec import CONDA_HISTORY, EnvSpec, Pin, now_iso, render
from ..targets import Session, Target
from ..validate import canonical_name
from .common import Progress, capabilities, find_environment, whole_to_read



def _portable_name(name: str) -> str:
    """The name to give a copy: 'foo' for a project's 'foo/.venv', else the last part."""
    parts = [part for part in name.split("/") if part]
    if len(parts) > 1 and parts[-1] in (".venv", "venv", ".env", "env"):
        return parts[-2]
    return parts[-1] if parts else "env"


def freeze_skips(env: Environment) -> frozenset[str]:
    """What `pip freeze` leaves out of this environment, so an export lists exactly what it lists:
    pip itself, and setuptools, wheel and distribute where the Python is older than 3.12 (they
    come with such environments; on 3.12+ they are there only because someone asked for them)."""
    try:
        older = tuple(int(part) for part in (env.python or "0").split(".")[:2]) < (3, 12)
    except ValueError:
        older = True
    return INSTALLER_PACKAGES if older else frozenset({"pip"})


def spec_from_environment(env: Environment, target: Target) -> EnvSpec:
    """Describe an environment: its kind, Python, modules, what was asked for and the exact pins."""
    meta = env.envdesk or {}
    pins = []
    skipped = freeze_skips(env)
    for package in env.packages:
        if package.installer == "conda":
            pins.append(Pin(package.name, package.version, "conda", package.build, package.channel))
        elif env.kind == "conda" or package.name.lower() not in skipped:
            pins.append(Pin(package.name, package.version, url=package.url, editable=package.editable))
    requested = list(meta.get("requested") or [])
    if not requested:
        requested = [p.name for p in env.packages if p.requested and p.installer != "conda"
                     and p.name.lower() not in INSTALLER_PACKAGES]
    return EnvSpec(
        kind=env.kind, python=env.python, modules=list(env.modules),
        system_site_packages=env.system_site_packages, requirements=requested,
        conda_requirements=list(env.conda_requested or meta.get("conda_requested") or []),
        pins=pins, channels=list(env.channels), pip_args=list(target.pip_args), name=_portable_name(env.name),
        constraints=list(env.constraints), provided=provided_pins(env),
        source={"cluster": target.name, "path": env.path, "name": env.name}, created=now_iso())


FROZEN_FORMATS = ("requirements", "conda")
"""The formats that carry no modules to load (conda's), or whose reader may have none (a requirements file): they
list what `pip freeze` lists with the environment's modules loaded, so a copy built from them without those
modules imports what the environment imports."""


def as_pip_freeze_lists_it(spec: EnvSpec, env: Environment) -> EnvSpec:
    """`spec` with the pins `pip freeze` gives where the environment's modules are loaded: the packages its modules
    put on PYTHONPATH at the versions Python imports, in place of the environment's own copies they hide (T20: an
    export left scipy-stack's numpy, scipy and matplotlib out, and a copy without that module had none of them).
    An envdesk.yaml keeps the environment's own pins instead, with its modules and what they provided apart
    (EnvSpec.provided): built where the modules load, it is the same environment again."""
    modules = module_packages(env)
    if not modules:
        return spec
    skipped = freeze_skips(env)
    pins = [pin for pin in spec.pins if pin.source == "conda" or canonical_name(pin.name) not in modules]
    pins += [Pin(package.name, package.version) for _, package in modules.values()
             if package.name.lower() not in skipped]
    return replace(spec, pins=pins)


def export_environment(session: Session, target_name: str, env_ref: str, fmt: str = "envdesk",
                       progress: Progress | None = None) -> str:
    """The environment in one of the export formats, as text."""
    progress = progress or Progress()
    target = session.target(target_name)
    env = whole_to_read(find_environment(target, env_ref, progress), "exported", progress)
    spec = spec_from_environment(env, target)
    if fmt == "pylock":
        return _pylock(session, target, env, spec, progress)
    if fmt == CONDA_HISTORY:  # the channels it was made with, in order, as EnvDesk recorded them
        spec.channels = list((env.envdesk or {}).get("channels") or spec.channels)
    return render(as_pip_freeze_lists_it(spec, env) if fmt in FROZEN_FORMATS else spec, fmt)


def _pylock(session: Session, target: Target, env: Environment, spec: EnvSpec, progress: Progress) -> str:
    """PEP 751 needs every file's URL and hash, which only the package index knows: the target's uv
    resolves the exact pins there (`uv pip compile --format pylock.toml`) and writes the lock."""
    caps = capabilities(session, target, progress)
    uv = caps.uv()
    if uv is None:
        raise InvalidInput(f"A pylock.toml is written by uv, which {target.label} does not have.",
                           "Export as requirements or envdesk instead (both keep the exact versions).")
    lines = [pin.pip_line() for pin in spec.pip_pins]  # an editable folder is a PEP 751 directory entry
    left_out = [pin.pip_line() for pin in spec.pins if pin.source == "conda"]
    if left_out:
        raise InvalidInput("A pylock.toml cannot hold these: " + ", ".join(left_out) + ".",
                           "Export as envdesk or requirements instead.")
    command, uv_modules = uv
    shown, settings = split_settings(target.pip_args, "uv")  # credentials travel in the environment
    uv_args = [PIP_TO_UV.get(arg, arg) for arg in shown]
    python = env.python or caps.system_python or "3"
    step = Step(f"Writing pylock.toml with uv on {target.label}",
                (command, "pip", "compile", "-", "--format", "pylock.toml", "--quiet", "--no-header",
                 "--python-version", ".".join(python.split(".")[:2]), *uv_args),
                tuple(env.modules) + tuple(uv_modules))
    progress.step(step.what)

    def lock(requirements: list[str]) -> str:
        result = target.runner.run(step.argv, modules=step.modules, stdin=("\n".join(requirements) + "\n").encode(),
                                   env=dict(settings), cancel=progress.cancel, timeout=600)
        return result.check(step.what, "The package index must still offer these exact versions.").stdout

    text = lock(lines)
    moved = _installer_packages_moved(text, env)
    return lock(lines + moved) if moved else text


def _installer_packages_moved(lock: str, env: Environment) -> list[str]:
    """Pins for the packages pip freeze leaves out (setuptools, wheel, pip) that the lock holds at another
    version than the environment does: a package that needs setuptools had the newest resolved for it (T15:
    84.2.1 in the lock, 65.5.0 in the environment). Only those the lock needs, so most locks take one command."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    from ..validate import canonical_name

    installed = {canonical_name(p.name): p.version for p in env.packages
                 if p.installer != "conda" and canonical_name(p.name) in INSTALLER_PACKAGES}
    try:
        locked = {canonical_name(str(p.get("name"))): p.get("version") for p in tomllib.loads(lock).get("packages", [])
                  if isinstance(p, dict)}
    except tomllib.TOMLDecodeError:
        return []  # not a lock to mend: returned as uv wrote it, for its reader to refuse
    return [f"{name}=={version}" for name, version in sorted(installed.items())
            if name in locked and locked[name] != version]
