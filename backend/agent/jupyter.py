"""EnvDesk remote agent, Jupyter part: the user's own Jupyter kernel folder, and the kernels EnvDesk made for
one environment.

Sent with the write part (deleting an environment removes the kernels EnvDesk made for it, so none is left
that can no longer start) and at the head of the kernel helper (operations/kernels.py), so both find the
folder by the same rule. Python 3.6+, standard library only.
"""
# mypy: ignore-errors
import json
import os
import sys


def envset(name):
    """Whether a variable is set the way jupyter_core reads a true flag."""
    return os.environ.get(name, "").lower() not in ("", "no", "n", "false", "off", "0", "0.0")


def jupyter_data_dir():
    """The user data folder jupyter_core.paths.jupyter_data_dir() names in this environment."""
    if os.environ.get("JUPYTER_DATA_DIR"):
        return os.environ["JUPYTER_DATA_DIR"]
    home = os.path.realpath(os.path.expanduser("~"))
    if sys.platform == "darwin":
        if envset("JUPYTER_PLATFORM_DIRS"):
            return os.path.join(home, "Library", "Application Support", "jupyter")
        return os.path.join(home, "Library", "Jupyter")
    if sys.platform == "win32":
        if envset("JUPYTER_PLATFORM_DIRS") and os.environ.get("LOCALAPPDATA"):
            return os.path.join(os.environ["LOCALAPPDATA"], "jupyter")
        if os.environ.get("APPDATA"):
            return os.path.realpath(os.path.join(os.environ["APPDATA"], "jupyter"))
        config = os.environ.get("JUPYTER_CONFIG_DIR") or os.path.join(home, ".jupyter")
        return os.path.join(config, "data")
    return os.path.join(os.environ.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share"), "jupyter")


def jupyter_kernels():
    """The user's kernel folder and the names of the entries in it (EnvDesk's own work folders left out)."""
    kernels = os.path.join(jupyter_data_dir(), "kernels")
    try:
        names = sorted(os.listdir(kernels))
    except OSError:
        names = []
    return kernels, [name for name in names if not name.startswith(".envdesk-")]


MAX_KERNEL_JSON_BYTES = 1024 * 1024  # Jupyter's own are a few hundred bytes


def read_kernel_json(folder):
    """The kernel.json of a kernel folder as a dict; None when there is none, ValueError when it cannot be read
    (too large, not JSON, nested past what the parser takes, not an object)."""
    path = os.path.join(folder, "kernel.json")
    if not os.path.isfile(path):
        return None
    try:
        if os.path.getsize(path) > MAX_KERNEL_JSON_BYTES:
            raise ValueError("larger than %d bytes" % MAX_KERNEL_JSON_BYTES)
        with open(path, encoding="utf-8") as handle:
            spec = json.loads(handle.read(MAX_KERNEL_JSON_BYTES + 1))
    except (OSError, ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ValueError(str(exc) or exc.__class__.__name__)
    if not isinstance(spec, dict):
        raise ValueError("not a JSON object")
    return spec


def as_file_name(text):
    """A path read in a kernel.json (UTF-8 text) as this Python names that file: a Python 3.6 without a locale
    names files in ASCII, where 'ü' is the escapes of its UTF-8 bytes (the agent's as_file_text does the same
    for all it reads; this part also runs without the agent)."""
    return os.fsdecode(text.encode("utf-8", "surrogateescape"))


def made_by_envdesk(spec):
    """What EnvDesk recorded in a kernel's metadata when it made it (the environment it runs...), or None."""
    metadata = spec.get("metadata") if isinstance(spec, dict) else None
    mine = metadata.get("envdesk") if isinstance(metadata, dict) else None
    return mine if isinstance(mine, dict) else None


def remove_kernel_folder(folder):
    """Remove one kernel folder; a link is removed as a link, never what it points to."""
    if os.path.islink(folder):
        os.unlink(folder)
    else:
        import shutil
        shutil.rmtree(folder)


def kernels_of(env_path):
    """([(name, folder)] of the kernels EnvDesk made for the environment at `env_path`, [names] of the other
    tools' kernels whose program is inside it): a delete removes the first and leaves the others, which no longer
    start without it."""
    real = os.path.realpath(env_path)
    kernels, names = jupyter_kernels()
    mine, others = [], []
    for name in names:
        folder = os.path.join(kernels, name)
        try:
            spec = read_kernel_json(folder)
            made = made_by_envdesk(spec)
            if made is not None:
                env = made.get("env")
                if isinstance(env, str) and os.path.isabs(env) and os.path.realpath(as_file_name(env)) == real:
                    mine.append((name, folder))
                continue
            argv = spec.get("argv") if spec else None
            program = as_file_name(argv[0]) if isinstance(argv, list) and argv and isinstance(argv[0], str) else ""
            # the program's folder, resolved: an environment's python is itself a link out of it
            if os.path.isabs(program) and os.path.realpath(os.path.dirname(program)).startswith(os.path.join(real, "")):
                others.append(name)
        except (OSError, ValueError):  # another tool's file, or one nobody can read (a NUL in a path...)
            continue
    return mine, others
