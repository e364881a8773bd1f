"""Run uv with the pip settings of the machine it runs on: uv reads no pip.conf nor PIP_ variable
(astral-sh/uv#1404), yet clusters set where packages come from there. The Alliance's clusters, for one,
load a pip.conf (PIP_CONFIG_FILE, set by their modules) whose find-links name the clusters' own wheels,
with a constraints file and packages that must come as wheels.

Run as ``PYTHON -I -S -c THIS_TEXT UV pip SUBCOMMAND ARGS...`` by the environment's own Python (so that
``sys.prefix`` is the environment, whose own pip.conf pip reads too), in the shell where the modules were
loaded. It reads what pip would read for ``pip install``, in pip's order, and runs uv with it: URLs and
files as uv's variables (never as arguments, which other users see, since a URL may hold a token), flags as
arguments. A variable the user has set for uv is kept as it is. EnvDesk's own pip arguments for the target
are uv's arguments, so they win over these, as pip's command line wins over its configuration.

Python 3.6, standard library only, like the agent; configparser is loaded only when a pip.conf exists.
"""
# mypy: ignore-errors
import os
import sys

BOOLEAN_WORDS = {"y": True, "yes": True, "t": True, "true": True, "on": True, "1": True,
                 "n": False, "no": False, "f": False, "false": False, "off": False, "0": False}
# pip's setting -> (the uv variable that takes it, how a list is joined there), or None for a flag.
URL_AND_FILE_SETTINGS = {
    "index-url": ("UV_INDEX_URL", None), "extra-index-url": ("UV_EXTRA_INDEX_URL", " "),
    "find-links": ("UV_FIND_LINKS", ","), "constraint": ("UV_CONSTRAINT", " "),
    "trusted-host": ("UV_INSECURE_HOST", " "), "cert": ("SSL_CERT_FILE", None), "proxy": ("HTTPS_PROXY", None),
    "timeout": ("UV_HTTP_TIMEOUT", None),
}
LIST_SETTINGS = ("extra-index-url", "find-links", "constraint", "trusted-host")
FLAG_SETTINGS = ("no-index", "pre")
CHOICE_SETTINGS = ("only-binary", "no-binary")
ALIASES = {"default-timeout": "timeout"}  # pip takes a setting by any long name of its option
# A setting given another way for uv already: the user's own choice for uv, kept.
ALREADY_SET = {"UV_INDEX_URL": ("UV_INDEX_URL", "UV_DEFAULT_INDEX"), "HTTPS_PROXY": ("HTTPS_PROXY", "https_proxy")}


class PipSettingsError(Exception):
    """A pip setting pip itself would refuse."""


def config_files(environ, prefix, platform=sys.platform):
    """pip's configuration files for this user, in the order pip reads them (a later one overrides an earlier
    one): the machine's, the user's (not when PIP_CONFIG_FILE names a file that exists), the environment's,
    then PIP_CONFIG_FILE's; none when PIP_CONFIG_FILE is os.devnull."""
    named = environ.get("PIP_CONFIG_FILE")
    if named == os.devnull:
        return []
    home = environ.get("HOME") or os.path.expanduser("~")
    if platform == "win32":
        machine = [os.path.join(environ.get("ALLUSERSPROFILE", "C:\\ProgramData"), "pip", "pip.ini")]
        user = [os.path.join(home, "pip", "pip.ini"),
                os.path.join(environ.get("APPDATA", os.path.join(home, "AppData", "Roaming")), "pip", "pip.ini")]
        site = os.path.join(prefix, "pip.ini")
    else:
        if platform == "darwin":
            machine = ["/Library/Application Support/pip/pip.conf"]
            modern = os.path.join(home, "Library", "Application Support", "pip")
            if not os.path.isdir(modern):
                modern = os.path.join(environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "pip")
        else:
            folders = (environ.get("XDG_CONFIG_DIRS") or "").strip() or "/etc/xdg"
            machine = [os.path.join(os.path.expanduser(folder.rstrip(os.sep)), "pip", "pip.conf")
                       for folder in folders.split(os.pathsep)] + ["/etc/pip.conf"]
            modern = os.path.join(environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "pip")
        user = [os.path.join(home, ".pip", "pip.conf"), os.path.join(modern, "pip.conf")]
        site = os.path.join(prefix, "pip.conf")
    if named and os.path.exists(named):
        user = []
    return machine + user + [site] + ([named] if named else [])


def normalized(name):
    """A setting's name as pip compares them: lower case, dashes, no leading '--'."""
    name = name.lower().replace("_", "-")
    name = name[2:] if name.startswith("--") else name
    return ALIASES.get(name, name)


def pip_settings(environ, prefix, platform=sys.platform):
    """The settings `pip install` would take from its configuration files and PIP_ variables, by name
    (see normalized): [global] first, then [install] over it, then the variables over both."""
    merged = {}
    for path in config_files(environ, prefix, platform):
        if not os.path.isfile(path):
            continue
        import configparser
        parser = configparser.RawConfigParser()
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                parser.read_file(handle, source=path)
        except (OSError, configparser.Error) as error:  # the reason only: its line may hold a token
            reason = error.strerror if isinstance(error, OSError) else type(error).__name__
            raise PipSettingsError("pip's settings file %s cannot be read (%s)." % (path, reason))
        for section in parser.sections():
            for key, value in parser.items(section):
                merged[(section, normalized(key))] = (value, path)
    for key, value in environ.items():
        if key.startswith("PIP_") and key != "PIP_CONFIG_FILE":
            merged[(":env:", normalized(key[4:]))] = (value, key)
    settings = {}
    for section in ("global", "install", ":env:"):
        for (where, name), found in merged.items():
            if where == section and found[0].strip():  # pip skips a setting with no value
                settings[name] = found
    return settings


def uv_settings(settings, environ, hashed=False, given=()):
    """(uv's arguments, uv's variables) for pip's `settings`, leaving out what the user has already set for uv
    (`environ`); a list of find-links keeps only the places that exist here, as pip does.

    `hashed`: the install checks hashes, where uv refuses a constraint that is not an exact pin (the
    Alliance's constraints are ranges) and pip takes it; every package is pinned to its files then anyway,
    so the constraints are left out."""
    args, variables = [], {}
    for name, (value, origin) in settings.items():
        if hashed and name == "constraint":
            continue
        if name in FLAG_SETTINGS:
            word = value.strip().lower()
            if word not in BOOLEAN_WORDS:
                raise PipSettingsError("pip's setting %s = %s (in %s) is not yes or no." % (name, value, origin))
            if BOOLEAN_WORDS[word]:
                if name == "no-index":
                    if "--no-index" not in given:  # uv refuses it twice (EnvDesk's presets give it)
                        args.append("--no-index")
                else:
                    variables["UV_PRERELEASE"] = "allow"
        elif name in CHOICE_SETTINGS:
            args.extend(["--" + name, ",".join(value.replace(",", " ").split())])
        elif name in URL_AND_FILE_SETTINGS:
            variable, joiner = URL_AND_FILE_SETTINGS[name]
            values = value.split() if name in LIST_SETTINGS else [value.strip()]
            if name == "find-links":
                values = [os.path.expanduser(place) if place.startswith("~") else place for place in values]
                values = [place for place in values if _exists_or_remote(place)]
            if values and values != [""]:
                variables[variable] = (joiner or " ").join(values)
    if "HTTPS_PROXY" in variables:
        variables["HTTP_PROXY"] = variables["HTTPS_PROXY"]
    for variable in list(variables):
        if any(environ.get(name) for name in ALREADY_SET.get(variable, (variable,))):
            del variables[variable]
    return args, variables


def _exists_or_remote(place):
    """Whether pip would look in this find-links place: a URL, or a file or folder that exists."""
    if place.startswith("file:"):
        from urllib.parse import unquote, urlparse
        return os.path.exists(unquote(urlparse(place).path))
    return "://" in place or os.path.exists(place)


def environment_prefix():
    """The environment this Python belongs to: a venv's folder (pyvenv.cfg beside its Python or one folder
    up, as site.venv looks; -S leaves sys.prefix at the base Python), else sys.prefix (a conda env)."""
    folder = os.path.dirname(os.path.abspath(sys.executable))
    for candidate in (folder, os.path.dirname(folder)):
        if os.path.isfile(os.path.join(candidate, "pyvenv.cfg")):
            return candidate
    return sys.prefix


def main(argv):
    command = argv[1:]
    try:
        args, variables = uv_settings(pip_settings(os.environ, environment_prefix()), os.environ,
                                      "--require-hashes" in command, command)
    except PipSettingsError as error:
        sys.stderr.write("%s Fix it (pip refuses it too), then try again.\n" % error)
        return 2
    command = command[:3] + args + command[3:]
    environ = dict(os.environ)
    environ.update(variables)
    if os.name == "nt":
        import subprocess
        return subprocess.call(command, env=environ)
    os.execvpe(command[0], command, environ)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
