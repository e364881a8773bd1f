"""Jupyter kernels of environments: a user kernelspec whose launcher loads the environment's modules first.

A kernel made here lives where Jupyter looks for the user's own kernels on the target (its user data folder,
`~/.local/share/jupyter/kernels/<name>/` on Linux, or `$JUPYTER_DATA_DIR/kernels/` where the login shell sets
it, as `jupyter kernelspec install --user` would choose). Its `kernel.json` runs `launch.sh` beside it, which
drops the Jupyter server's PYTHONPATH and modules (keeping sticky ones and the site's login defaults), loads
the recorded modules and activates the environment, then execs its Python with `ipykernel_launcher`: so Jupyter
started by Open OnDemand or JupyterHub on that cluster (which loads other modules, or none) runs the environment
as a new terminal would. On Windows (This computer only) the kernel runs the environment's Python directly.

The files are written by a stdlib script sent to the target's own Python (KERNEL_SCRIPT, Python 3.6 syntax);
every value reaches it as JSON inside that script and the launcher's words are quoted here (shlex.quote).
"""
from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from .. import validate
from ..about import created_with
from ..agent_client import JUPYTER_PART, agent_part
from ..errors import CommandFailed, InvalidInput, NotFound
from ..inventory import Environment
from ..runner import CommandResult
from ..snippets import place_of, terminal_snippet
from ..spec import now_iso
from ..targets import Session, Target
from ..validate import canonical_name
from .common import Progress, capabilities, find_environment

PREFIX = "envdesk-"
LAUNCHER = "launch.sh"
IPYKERNEL = "ipykernel"
KERNEL_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")  # Jupyter's own rule, lower case (it lowers them)
ANSWER = "ENVDESK-KERNELS "

KERNEL_SCRIPT = r'''
import re, shutil, tempfile

ANSWER = "ENVDESK-KERNELS "
MODULE_CHECKS_SECONDS = 80  # all of a listing's module checks (the script itself is given 120 s)


def describe(folder, name):
    """One kernel folder as the client reads it; None when it holds no kernel.json."""
    if not os.path.isfile(os.path.join(folder, "kernel.json")):
        return None
    found = {"name": name, "folder": folder, "display_name": name, "argv": [], "envdesk": None, "error": None}
    try:
        spec = read_kernel_json(folder)
    except ValueError as exc:
        found["error"] = "kernel.json cannot be read: %s" % exc
        return found
    found["display_name"] = str(spec.get("display_name") or name)
    argv = spec.get("argv")
    found["argv"] = [str(arg) for arg in argv] if isinstance(argv, list) else []
    found["envdesk"] = made_by_envdesk(spec)
    python = (found["envdesk"] or {}).get("python")
    if not python and found["argv"] and os.path.basename(found["argv"][0]).lower().startswith("python"):
        python = found["argv"][0]
    found["python"] = python if isinstance(python, str) else None
    if found["python"] and os.path.isabs(found["python"]):
        found["python_exists"] = os.path.exists(found["python"])
    else:
        found["python_exists"] = None
    found["ipykernel"] = ipykernel_in(found["python"]) if found["python_exists"] else None
    found["environment"] = is_environment(found["python"]) if found["python_exists"] else None
    return found


def ipykernel_in(python):
    """Whether the environment of `python` holds ipykernel, which the kernel runs; None where packages from
    outside it count too (a venv seeing the system's packages, a Python that is no environment's)."""
    env = os.path.dirname(os.path.dirname(python))
    try:
        with open(os.path.join(env, "pyvenv.cfg"), encoding="utf-8") as handle:
            shared = re.search(r"^include-system-site-packages\s*=\s*true", handle.read(), re.I | re.M)
    except OSError:
        shared = not os.path.isdir(os.path.join(env, "conda-meta"))  # neither a venv nor a conda environment
    sites = [os.path.join(env, "Lib", "site-packages")]
    try:
        sites += [os.path.join(env, "lib", name, "site-packages") for name in os.listdir(os.path.join(env, "lib"))
                  if name.startswith("python")]
    except OSError:
        pass
    if any(os.path.isfile(os.path.join(site, "ipykernel", "__init__.py")) for site in sites):
        return True
    return None if shared else False


def modules_gone(config, kernel):
    """(the first of the kernel's recorded modules the module system no longer has, or None; whether they were
    checked): from the modules a new login has, each one asked of `module is-avail` and loaded in turn, as its
    launcher loads them (a module behind a compiler is there once the compiler is loaded). Not checked without
    Lmod, or past the listing's budget."""
    modules = [str(m) for m in ((kernel.get("envdesk") or {}).get("modules") or [])]
    if not modules:
        return None, True
    import subprocess
    import time
    environ = dict(os.environ)
    environ.pop("ENVDESK_PYTHON", None)
    if kernel.get("ipykernel") is False:  # not in the environment: one of its modules may give it
        environ["ENVDESK_PYTHON"] = kernel["python"]
    # one check per set of modules, all within one budget, so that a few slow ones leave the list to be said
    # (their modules 'not checked'), not the whole list failing at the script's own time limit (R20)
    until = config.setdefault("_checks_until", time.time() + MODULE_CHECKS_SECONDS)
    key = json.dumps([modules, "ENVDESK_PYTHON" in environ and kernel["python"]])
    done = config.setdefault("_checked", {})
    if key not in done:
        left = until - time.time()
        try:
            if left < 1:
                raise subprocess.TimeoutExpired("module check", 0)
            ran = subprocess.run(["bash", "-c", config["module_check"], "envdesk", *modules],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 universal_newlines=True, timeout=left, env=environ)
            done[key] = (ran.returncode, ran.stdout)
        except (OSError, subprocess.SubprocessError):
            done[key] = (3, "")
    returncode, stdout = done[key]
    said = [line[len("ENVDESK-GONE "):] for line in stdout.splitlines() if line.startswith("ENVDESK-GONE ")]
    if returncode == 3:
        return None, False
    if "ENVDESK_PYTHON" in environ and returncode != 4:
        kernel["ipykernel"] = True if returncode == 0 else None  # unknown when a module is gone
    return (said[0] if said else None), returncode in (0, 4) or bool(said)


def answer(**fields):
    sys.stdout.write(ANSWER + json.dumps(fields) + "\n")


def refuse(code, error):
    answer(ok=False, code=code, error=error)


def find(kernels, name):
    """The kernel folder's name for `name`: the exact one first (T23: MYK, another tool's, was removed for myk,
    EnvDesk's), else one that differs only in case, as Jupyter lowers names."""
    names = jupyter_kernels()[1]
    if name in names:
        return name
    for entry in names:
        if entry.lower() == name.lower():
            return entry
    return None


def is_environment(python):
    """Whether `python` is a venv's or conda environment's (its folder has pyvenv.cfg or conda-meta), not a
    system Python such as /usr/bin/python3."""
    env = os.path.dirname(os.path.dirname(python))
    return os.path.isfile(os.path.join(env, "pyvenv.cfg")) or os.path.isdir(os.path.join(env, "conda-meta"))


def write(path, text, mode):
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(path, mode)


def taken(kernels, name, env):
    """(name as it is there, whose it is) when another kernel holds `name`; (name, None) when it is EnvDesk's for
    `env` (made again in place); (None, None) when the name is free."""
    entry = find(kernels, name)
    if entry is None:
        return None, None
    mine = (describe(os.path.join(kernels, entry), entry) or {}).get("envdesk") or {}
    if mine.get("env") == env:
        return entry, None
    return entry, ("made by EnvDesk for %s" % mine.get("env")) if mine else "not made by EnvDesk"


def choose(config, kernels):
    """Of the proposed [name, display name] pairs, the first that is this environment's kernel already, else the
    first that is free (None when none is), as (name, display name, name there or None); and the kernels passed
    over before it, as [name there, whose it is]."""
    found = [tuple(proposed) + taken(kernels, proposed[0], config["env"]) for proposed in config["names"]]
    if config.get("force"):
        return found[0][:3], []
    again = [item for item in found if item[2] is not None and item[3] is None]
    free = [item for item in found if item[2] is None]
    pick = (again or free or [None])[0]
    before = found[:found.index(pick)] if pick is not None else found
    return (pick[:3] if pick else None), [[item[2], item[3]] for item in before if item[3]]


def add(config, kernels):
    pick, passed = choose(config, kernels)
    if pick is None:
        entry, whose = passed[0]
        return refuse("exists", "A Jupyter kernel called %s is already there (%s)." % (entry, whose))
    name, shown, entry = pick[0], pick[1], pick[2]
    final = os.path.join(kernels, entry or name)
    if not os.path.isdir(kernels):
        os.makedirs(kernels, 0o755)
    work = tempfile.mkdtemp(prefix=".envdesk-new-", dir=kernels)
    try:
        spec = config["spec"]
        spec["display_name"] = shown
        if config.get("launcher") is not None:
            write(os.path.join(work, "launch.sh"), config["launcher"], 0o700)
            spec["argv"] = [os.path.join(final, "launch.sh"), "-f", "{connection_file}"]
        write(os.path.join(work, "kernel.json"), json.dumps(spec, indent=1) + "\n", 0o644)
        os.chmod(work, 0o755)
        old = None
        if os.path.lexists(final):
            old = tempfile.mkdtemp(prefix=".envdesk-old-", dir=kernels)
            os.rename(final, os.path.join(old, "kernel"))
        os.rename(work, final)
        work = None
        if old is not None:
            shutil.rmtree(old)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    answer(ok=True, kernel=describe(final, os.path.basename(final)), passed=passed)


def remove(config, kernels):
    entry = find(kernels, config["name"])
    folder = os.path.join(kernels, entry) if entry is not None else None
    found = describe(folder, entry) if folder is not None else None
    if found is None:
        return refuse("missing", "There is no Jupyter kernel called %s in %s." % (config["name"], kernels))
    if found.get("envdesk") is None and not config.get("force"):
        return refuse("not-mine", "The Jupyter kernel %s was not made by EnvDesk." % entry)
    remove_kernel_folder(folder)
    answer(ok=True, kernel=found)


def main(config):
    kernels, names = jupyter_kernels()
    todo = config["do"]
    if todo == "list":
        found = [describe(os.path.join(kernels, entry), entry) for entry in names]
        for kernel in found:
            if kernel is not None and kernel.get("python_exists"):
                kernel["module_gone"], kernel["modules_checked"] = modules_gone(config, kernel)
        return answer(ok=True, folder=kernels, kernels=[k for k in found if k is not None])
    if todo == "add":
        return add(config, kernels)
    return remove(config, kernels)
'''
"""What the target's Python runs for add, list and remove (stdlib, Python 3.6), after the agent's Jupyter part
(JUPYTER_PART, which finds the kernel folder as the agent's delete does); see _run_script."""


class IpykernelMissing(InvalidInput):
    """The environment has no ipykernel, so Jupyter cannot run it; installing it is offered, never done silently."""


@dataclass(frozen=True)
class Kernel:
    """One user kernelspec on a target, as its kernel.json says."""

    name: str
    display_name: str
    folder: str
    env_path: str | None          # the environment it runs (None: not one EnvDesk can tell)
    python: str | None
    env_exists: bool | None       # whether that environment's Python is still there (None: unknown)
    made_by_envdesk: bool
    has_ipykernel: bool | None = None  # whether that environment holds ipykernel, which the kernel runs (None: unknown)
    module_gone: str | None = None  # the first of its modules the cluster no longer has (T23: a retired module)
    modules_checked: bool = True    # False: it loads modules, and `module` could not be asked about them
    modules: tuple[str, ...] = ()
    argv: tuple[str, ...] = ()
    error: str | None = None
    notes: list[str] = field(default_factory=list, compare=False)

    def what_stays(self) -> str:
        """What removing this kernel leaves, said rightly (T23: "its environment .../kv is untouched" of a folder
        that was gone, and "its environment /usr" of a system Python)."""
        if self.env_path and self.env_exists is False:
            return f"Its environment {self.env_path} was gone already."
        if self.env_path and self.env_exists:
            return f"Its environment {self.env_path} is untouched."
        if self.python and self.env_exists:
            return f"The Python it ran, {self.python}, is no environment's and is untouched."
        return ""

    def to_json(self) -> dict[str, Any]:
        """The fields `envdesk kernel list --json` promises."""
        data = asdict(self)
        del data["notes"]
        data["modules"], data["argv"] = list(self.modules), list(self.argv)
        return data

    @classmethod
    def from_script(cls, found: dict[str, Any]) -> "Kernel":
        mine = found.get("envdesk") if isinstance(found.get("envdesk"), dict) else None
        python = found.get("python")
        env_path = (mine or {}).get("env")
        if (env_path is None and found.get("environment") is not False and isinstance(python, str)
                and re.search(r"[/\\](bin|Scripts)[/\\][^/\\]+$", python)):
            env_path = re.sub(r"[/\\](bin|Scripts)[/\\][^/\\]+$", "", python)
        modules = (mine or {}).get("modules")
        return cls(name=str(found["name"]), display_name=str(found.get("display_name") or found["name"]),
                   folder=str(found.get("folder", "")), env_path=env_path if isinstance(env_path, str) else None,
                   python=python if isinstance(python, str) else None, env_exists=found.get("python_exists"),
                   made_by_envdesk=mine is not None, has_ipykernel=found.get("ipykernel"),
                   module_gone=found.get("module_gone") if isinstance(found.get("module_gone"), str) else None,
                   modules_checked=found.get("modules_checked") is not False,
                   modules=tuple(str(m) for m in modules) if isinstance(modules, list) else (),
                   argv=tuple(found.get("argv") or ()), error=found.get("error"))


def kernel_name(env_name: str) -> str:
    """`envdesk-<name>` in the letters Jupyter allows in kernel names (it lowers them; others become '-')."""
    return PREFIX + re.sub(r"[^a-z0-9._-]", "-", env_name.lower())


def _checked_name(name: str) -> str:
    """The kernel's name as Jupyter installs it: lower case (jupyter kernelspec install lowers it too)."""
    if not KERNEL_NAME.fullmatch((name or "").lower()):
        raise InvalidInput(f"{validate.shown(name)} cannot be a Jupyter kernel name.",
                           "Use letters, digits, '.', '-' or '_' (up to 100), starting with a letter or digit.")
    return name.lower()


def _checked_env(env: Environment, target: Target) -> None:
    """Refuse plainly what could not be written into a launcher as plain words."""
    try:
        validate.env_name(env.name)
    except InvalidInput as exc:
        raise InvalidInput(f"EnvDesk does not make Jupyter kernels for an environment called "
                           f"{validate.shown(env.name)}: {exc.message}",
                           "Rename the environment's folder (or make a new environment) first.") from exc
    validate.plain_text(env.path, "environment folder")
    for module in env.modules:
        try:
            validate.module_name(module)
        except InvalidInput as exc:
            raise InvalidInput(f"{env.name} on {target.label} records the module {validate.shown(module)}, which "
                               "is not a module name, so no kernel can load it.") from exc


def _module_init() -> str:
    """Shell lines that make `module` exist where Jupyter's environment lacks it (a server started without a
    login shell): the module system's own init file, found where sites put it."""
    places = ['"${LMOD_PKG:+$LMOD_PKG/init/bash}"', "/etc/profile.d/lmod.sh", "/etc/profile.d/z00_lmod.sh",
              "/etc/profile.d/modules.sh", "/usr/share/lmod/lmod/init/bash", "/usr/share/Modules/init/bash"]
    return ("if ! type module >/dev/null 2>&1; then\n"
            f"  for envdesk_init in {' '.join(places)}; do\n"
            '    if [ -n "$envdesk_init" ] && [ -r "$envdesk_init" ]; then\n'
            '      . "$envdesk_init" >/dev/null 2>&1\n'
            "      type module >/dev/null 2>&1 && break\n"
            "    fi\n"
            "  done\n"
            "  unset envdesk_init\n"
            "fi\n")


_LOGIN_MODULES = ("module purge >/dev/null 2>&1\n"
                  '[ -z "${LMOD_SYSTEM_DEFAULT_MODULES:-}" ] || '
                  'module load ${LMOD_SYSTEM_DEFAULT_MODULES//:/ } >/dev/null 2>&1\n')
"""The modules a new login has: `module purge` (Lmod keeps sticky modules, such as the Alliance's StdEnv), then
the site's defaults a login loads (Lmod's LMOD_SYSTEM_DEFAULT_MODULES: a default that is not sticky, a Cray
PrgEnv say, would be gone after a purge, R20). Not `module reset`, which also puts MODULEPATH back to the
system's, losing the user's own `module use` folders."""


def _fresh_start() -> str:
    """Shell lines that leave nothing of the Jupyter server's own setup to the kernel (T23: Open OnDemand loads
    modules for the server, scipy-stack's PYTHONPATH among them, and the kernel imported the stack's packages
    instead of the environment's): no inherited PYTHONPATH or PYTHONHOME, and the modules a new login has
    (_LOGIN_MODULES) where `module` exists."""
    return ("unset PYTHONPATH PYTHONHOME\n"
            "if type module >/dev/null 2>&1; then\n"
            + "".join(f"  {line}\n" for line in _LOGIN_MODULES.splitlines()) +
            "fi\n")


def _module_check() -> str:
    """The shell lines the listing runs (with a kernel's modules as its arguments) to tell whether each module is
    still there, as the launcher loads them: exit 3 where there is no `module`; 'ENVDESK-GONE NAME' for the first
    that is gone; with $ENVDESK_PYTHON set, exit 4 when that Python finds no ipykernel with them loaded."""
    return (_module_init() + "type module >/dev/null 2>&1 || exit 3\n"
            '[ -n "${LMOD_CMD:-}" ] || exit 3\n'  # Environment Modules 3.2 has no is-avail: not checked (R20)
            "unset PYTHONPATH PYTHONHOME\n" + _LOGIN_MODULES +
            'for envdesk_module in "$@"; do\n'
            '  module is-avail "$envdesk_module" >/dev/null 2>&1 || { echo "ENVDESK-GONE $envdesk_module"; exit 1; }\n'
            '  module load "$envdesk_module" >/dev/null 2>&1\n'
            "done\n"
            '[ -z "$ENVDESK_PYTHON" ] || "$ENVDESK_PYTHON" -c "import importlib.util, sys; '
            "sys.exit(0 if importlib.util.find_spec('ipykernel_launcher') else 4)\" || exit 4\n"
            "exit 0\n")


def launcher_text(env: Environment, python: str, conda_tool: str | None = None) -> str:
    """The launcher kept beside kernel.json: forget the server's modules and PYTHONPATH, load the environment's
    modules, activate it (as the terminal snippet does), exec its Python with ipykernel_launcher and Jupyter's
    arguments. Every value is quoted. It is a bash script of its own (its #! line), whatever the login shell."""
    lines = ["#!/bin/bash",
             "# Made by EnvDesk: starts this Jupyter kernel inside its environment as a new terminal would: the",
             "# Jupyter server's modules and PYTHONPATH dropped, the environment's modules loaded.",
             "# kernel.json beside it names the environment. Made again by `envdesk kernel add`."]
    # without modules of its own, `module` is looked for only where the server had some loaded (a server started
    # from tcsh or fish exports no `module` function to this bash script, only Lmod's variables)
    body = (_module_init() if env.modules else
            'if [ -n "${LOADEDMODULES:-}" ]; then\n' + _module_init() + "fi\n") + _fresh_start()
    if env.kind == "conda" and conda_tool and "/" in conda_tool:  # the hook's tool, wherever Jupyter's PATH is
        folder = conda_tool.rsplit("/", 1)[0]
        body += f"PATH={shlex.quote(folder)}${{PATH:+:$PATH}}\nexport PATH\n"
    body += "set -e\n" + terminal_snippet(env)
    body += f"exec {shlex.quote(python)} -m ipykernel_launcher \"$@\"\n"
    return "\n".join(lines) + "\n" + body


def _run_script(target: Target, config: dict[str, Any], progress: Progress, *,
                explicit: bool = True) -> dict[str, Any]:
    """Run KERNEL_SCRIPT with `config` on the target's Python; its answer, or the refusal as an error (`explicit`:
    the kernel's name was the user's, so another is theirs to give)."""
    # The settings travel inside the script (standard input), as the agent's do: not as arguments.
    source = (agent_part(JUPYTER_PART) + KERNEL_SCRIPT
              + f"\nmain(json.loads({ascii(json.dumps(config))}))\n")
    result = target.runner.run_python(source, [], cancel=progress.cancel, timeout=120, utf8=True)  # R21: 3.6, C
    answer = _answer(result)
    if answer is None:
        result.check(f"EnvDesk's kernel helper on {target.label}")
        raise CommandFailed(f"EnvDesk's kernel helper on {target.label} gave no answer.",
                            log=result.stdout + result.stderr)
    if answer.get("ok"):
        return answer
    code, error = answer.get("code"), str(answer.get("error") or "unknown problem")
    if code == "missing":
        raise NotFound(error, f"envdesk kernel list {target.name} shows the kernels there.")
    if code == "not-mine":
        raise InvalidInput(error, "EnvDesk removes only the kernels it made; add --force to remove it anyway.")
    if code == "exists":
        raise InvalidInput(error, "Give this kernel another name (envdesk kernel add --name NAME), or remove the "
                                  "other one first." if explicit else
                           "Remove one of those kernels first (Cluster ▸ Jupyter kernels…, or envdesk kernel remove).")
    raise CommandFailed(error)


def _answer(result: CommandResult) -> dict[str, Any] | None:
    lines = [line for line in result.stdout.splitlines() if line.startswith(ANSWER)]
    try:
        answer = json.loads(lines[-1][len(ANSWER):]) if lines else None
    except json.JSONDecodeError:
        return None
    return answer if isinstance(answer, dict) else None


def has_ipykernel(env: Environment) -> bool:
    """Whether the environment lists ipykernel among its own packages."""
    return any(canonical_name(p.name) == IPYKERNEL for p in env.packages)


def surely_lacks_ipykernel(env: Environment) -> bool:
    """Whether the environment surely has no ipykernel without asking its cluster: not among its own packages,
    and nothing else could give it (no system packages seen, no modules, which may put it on PYTHONPATH)."""
    return not has_ipykernel(env) and not env.system_site_packages and not env.modules


def with_ipykernel(packages: Sequence[str]) -> list[str]:
    """`packages` with ipykernel added, unless one of them already asks for it (a new environment meant to
    be a kernel)."""
    from packaging.requirements import InvalidRequirement, Requirement

    def named(spec: str) -> str:
        try:
            return canonical_name(Requirement(spec).name)
        except InvalidRequirement:
            return ""
    return list(packages) if any(named(p) == IPYKERNEL for p in packages) else [*packages, IPYKERNEL]


def _check_ipykernel(target: Target, env: Environment, python: str, progress: Progress) -> None:
    """Run the environment's Python as the launcher will (modules loaded) and find ipykernel_launcher there."""
    progress.step(f"Checking that {env.name} can run a Jupyter kernel")
    probe = ("import importlib.util, sys\n"
             "sys.exit(0 if importlib.util.find_spec('ipykernel_launcher') else 3)")
    result = target.runner.run([python, "-c", probe], modules=env.modules, cancel=progress.cancel, timeout=300)
    if result.exit_status == 3:
        raise _missing(target, env)
    result.check(f"Starting the Python of {env.name} on {target.label}" +
                 (f" with the modules {' '.join(env.modules)}" if env.modules else ""),
                 "The environment or its modules may be gone; `envdesk env doctor` checks them.")


def _missing(target: Target, env: Environment) -> IpykernelMissing:
    return IpykernelMissing(
        f"{env.name} on {target.label} has no ipykernel, which Jupyter needs to run it as a kernel.",
        f"Install it first: envdesk kernel add {target.name} {env.name} --install-ipykernel (an update adding "
        f"ipykernel, with a snapshot first), or envdesk env update {target.name} {env.name} --add ipykernel.")


def add_kernel(session: Session, target_name: str, env_ref: str, progress: Progress | None = None, *,
               name: str | None = None, display_name: str | None = None, install_ipykernel: bool = False,
               force: bool = False) -> Kernel:
    """Register the environment as a Jupyter kernel of the target's user (made again if EnvDesk made it before).

    Without ipykernel in the environment this raises IpykernelMissing, unless `install_ipykernel` is set: then
    an update adds it first (a snapshot is saved, as for every change). `force` replaces another kernel of
    that name.
    """
    progress = progress or Progress()
    target = session.target(target_name)
    env = find_environment(target, env_ref, progress)
    _checked_env(env, target)
    names = [_checked_name(name)] if name is not None else _proposed_names(env)
    if display_name is not None:
        validate.plain_text(display_name, "kernel display name")
    proposed = [[chosen, display_name if display_name is not None else _display_name(env, chosen)]
                for chosen in names]
    notes: list[str] = []
    python = target.runner.env_python(env.path)
    try:
        # T23: a module may give ipykernel (the Alliance's ipykernel module, a scipy-stack bundling it): judged
        # by the environment's Python with its modules loaded (one command), not by its own packages alone
        if surely_lacks_ipykernel(env):
            raise _missing(target, env)
        _check_ipykernel(target, env, python, progress)
    except IpykernelMissing:
        if not install_ipykernel:
            raise
        from .update import Change, update_environment
        updated = update_environment(session, target_name, env.path, Change(add=[IPYKERNEL]), progress)
        env = updated.environment
        notes.append(f"ipykernel was installed in {env.name}"
                     + (f" (snapshot {updated.snapshot}, in the Snapshots tab or envdesk env history, is from "
                        "before)." if updated.snapshot else "."))
        python = target.runner.env_python(env.path)
        _check_ipykernel(target, env, python, progress)
    windows = place_of(target).windows
    conda_tool = capabilities(session, target, progress).conda_tool if env.kind == "conda" else None
    spec: dict[str, Any] = {
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": proposed[0][1], "language": "python", "interrupt_mode": "signal",
        "metadata": {"envdesk": {"env": env.path, "env_name": env.name, "python": python, "kind": env.kind,
                                 "modules": list(env.modules), "made": now_iso(), "made_with": created_with()}}}
    progress.step(f"Making the Jupyter kernel {names[0]} on {target.label}")
    answer = _run_script(target, {"do": "add", "names": proposed, "env": env.path, "force": force, "spec": spec,
                                  "launcher": None if windows else launcher_text(env, python, conda_tool)},
                         progress, explicit=name is not None)
    kernel = Kernel.from_script(answer["kernel"])
    passed = [f"{entry} ({whose})" for entry, whose in answer.get("passed") or []]
    if passed:  # T23: a second environment of the same folder name was refused, with a hint the window had no use for
        notes.append(f"A Jupyter kernel called {' and '.join(passed)} is already there, so this one is called "
                     f"{kernel.name}.")
    kernel.notes.extend(notes)
    return kernel


def _proposed_names(env: Environment) -> list[str]:
    """The kernel names EnvDesk tries in turn for an environment when none is given: envdesk-ENV, then one with
    the folder it is in (envdesk-PARENT-ENV), then numbered ones (envdesk-ENV-2...)."""
    parent = re.split(r"[/\\]", env.path.rstrip("/\\"))[-2:-1]
    names = [kernel_name(env.name)]
    if parent and parent[0]:
        names.append(kernel_name(f"{parent[0]}-{env.name}"))
    names += [kernel_name(f"{env.name}-{number}") for number in range(2, 10)]
    return [name for index, name in enumerate(names) if KERNEL_NAME.fullmatch(name) and name not in names[:index]]


def _display_name(env: Environment, chosen: str) -> str:
    """What Jupyter shows for a kernel of the environment: under a name of its own, told apart from the
    environment's first (T12: two kernels of one environment were both "NAME (EnvDesk)")."""
    default = f"{env.name} (EnvDesk)" if chosen == kernel_name(env.name) else f"{env.name} ({chosen}, EnvDesk)"
    return validate.plain_text(default, "kernel display name")


def list_kernels(session: Session, target_name: str, progress: Progress | None = None) -> list[Kernel]:
    """Every Jupyter kernel in the user's own kernel folder on the target, EnvDesk's and others', read in one
    command."""
    progress = progress or Progress()
    target = session.target(target_name)
    progress.step(f"Listing Jupyter kernels on {target.label}")
    answer = _run_script(target, {"do": "list", "module_check": _module_check()}, progress)
    return [Kernel.from_script(found) for found in answer.get("kernels") or []]


def remove_kernel(session: Session, target_name: str, name: str, progress: Progress | None = None, *,
                  force: bool = False) -> Kernel:
    """Remove a user kernel from the target: only one EnvDesk made, unless `force`. Its environment stays."""
    progress = progress or Progress()
    target = session.target(target_name)
    validate.plain_text(name, "kernel name")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise InvalidInput(f"{validate.shown(name)} is not a kernel name.", "Give a name that kernel list shows.")
    progress.step(f"Removing the Jupyter kernel {name} on {target.label}")
    return Kernel.from_script(_run_script(target, {"do": "remove", "name": name, "force": force}, progress)["kernel"])
