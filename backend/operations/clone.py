"""Copy an environment from one target to another: export and import in memory, no file left behind."""
from __future__ import annotations

from dataclasses import replace

from .. import spec as specs
from ..inventory import Environment
from ..spec import EnvSpec
from ..targets import Session, Target
from .common import Progress, find_environment, whole_to_read
from .export import spec_from_environment
from .importing import Availability, Imported, ImportPlan, import_environment


def clone_environment(session: Session, source: str, env_ref: str, destination: str, *, name: str | None = None,
                      root: str | None = None, top_level: bool = False, progress: Progress | None = None,
                      checked: Availability | None = None, other_builds: bool = False,
                      check_first: bool = False, agreed: bool = False,
                      shown: tuple[EnvSpec, ImportPlan] | None = None) -> Imported:
    """Rebuild `env_ref` of `source` on `destination` with the same packages where it can provide them (`checked`:
    what the check of the plan shown found there, `other_builds`, `check_first` and `agreed`, see
    import_environment). `shown`: the source's spec and its plan the user was shown (the window's), built as shown;
    the source is not read again, as what it holds now the user never saw (R19)."""
    progress = progress or Progress()
    if shown is not None:
        spec, plan = shown
    else:
        source_target = session.target(source)
        env = whole_to_read(find_environment(source_target, env_ref, progress), "copied", progress)
        spec, plan = spec_of_copy(env, source_target), None
    return import_environment(session, destination, spec, name=name or spec.name, root=root,
                              top_level=top_level, own_sources=True, progress=progress, checked=checked,
                              other_builds=other_builds, check_first=check_first, agreed=agreed, plan=plan)


def spec_of_copy(env: Environment, target: Target) -> EnvSpec:
    """What a copy of `env` (of `target`) is built from: its exact pins, and what its user asked for
    (asked_as_built)."""
    return asked_as_built(spec_from_environment(env, target))


def asked_as_built(spec: EnvSpec) -> EnvSpec:
    """`spec` with the conda packages its user asked for each at the version the source holds ('tinyalpha' ->
    'tinyalpha==2.0'): what a copy records as asked for (T21 MED-7: it recorded every package's exact pin), and,
    where the target has no conda, what is looked for on its index at the same versions (a bare name was left
    out there, as maybe another project than PyPI's)."""
    held = {pin.name.lower(): pin for pin in spec.conda_pins}

    def as_built(entry: str) -> str:
        pin = held.get(specs.conda_entry_name(entry))
        return f"{pin.name}=={pin.version}" if pin else entry
    return replace(spec, conda_requirements=[as_built(entry) for entry in spec.conda_requirements])
