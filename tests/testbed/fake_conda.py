#!/usr/bin/python3
"""STAND-IN for conda (conda, mamba and micromamba cannot be installed on this machine).

It is NOT conda. It mirrors the parts of conda's behaviour EnvDesk relies on, writing
prefixes in conda's real on-disk format: `conda-meta/<name>-<version>-<build>.json`
records (name, version, build, build_number, channel, subdir, requested_spec) and the
`conda-meta/history` file with its `==> date <==`, `# cmd:`, `# update specs:` and
`# remove specs:` lines. Packages come from a small built-in "channel"; anything else
fails the way conda does (PackagesNotFoundError, exit 1). Python itself is the system
Python, linked into the prefix.

Supported: create/install/remove with --yes/-y and --prefix/-p, and --version.
"""
import json
import os
import re
import sys
import time

CONDA_VERSION = "24.7.1"
CHANNEL = "https://conda.anaconda.org/conda-forge"
SUBDIR = "linux-64"
AVAILABLE = {
    "python": ["3.11.2"],
    "pip": ["24.0"],
    "numpy": ["1.26.4", "2.0.1"],
    "libzlib": ["1.3.1"],
    "tinyalpha": ["1.0", "1.1", "2.0"],
}
BUILDS = {"python": "h_standin_0", "pip": "pyhd8ed1ab_0"}


def fail(message, code=1):
    sys.stderr.write(message + "\n")
    sys.exit(code)


def parse_spec(spec):
    """(name, version, exact) of a match spec, as conda reads 'name=1.26' (any 1.26.*), 'name==1.26.4' and
    'name=1.26.4=build' (exactly that version); a range ('name>=1.24') is not checked by the stand-in."""
    bare = spec.split("::")[-1].strip()
    name = re.split(r"[=<>!~\s\[]", bare, maxsplit=1)[0].lower()
    rest = bare[len(name):].strip()
    exact = re.match(r"^==\s*([^=\s,|]+)(?:=\S+)?$|^=([^=\s,|*]+)=\S+$", rest)
    if exact:
        return name, exact.group(1) or exact.group(2), True
    fuzzy = re.match(r"^=([^=\s,|*]+)(?:\.\*)?$", rest)
    return name, fuzzy.group(1) if fuzzy else None, False


def resolve(specs):
    missing, chosen = [], []
    for spec in specs:
        name, version, exact = parse_spec(spec)
        versions = AVAILABLE.get(name, [])
        matches = [v for v in versions if version is None or v == version
                   or (not exact and v.startswith(version + "."))]
        if not matches:
            missing.append(spec)
        else:
            chosen.append((name, matches[-1], spec))
    if missing:
        fail("\nPackagesNotFoundError: The following packages are not available from current channels:\n\n"
             + "".join("  - %s\n" % m for m in missing) + "\nCurrent channels:\n\n  - %s/%s\n" % (CHANNEL, SUBDIR))
    return chosen


def record_path(prefix, name):
    meta = os.path.join(prefix, "conda-meta")
    for entry in os.listdir(meta):
        if entry.endswith(".json") and entry.rsplit("-", 2)[0] == name:
            return os.path.join(meta, entry)
    return None


def write_record(prefix, name, version, requested):
    old = record_path(prefix, name)
    if old:
        os.unlink(old)
    build = BUILDS.get(name, "py_0")
    filename = "%s-%s-%s.conda" % (name, version, build)
    record = {"build": build, "build_number": 0, "channel": "%s/%s" % (CHANNEL, SUBDIR), "name": name,
              "requested_spec": requested, "subdir": SUBDIR, "version": version, "files": [], "depends": [],
              "fn": filename, "url": "%s/%s/%s" % (CHANNEL, SUBDIR, filename)}
    with open(os.path.join(prefix, "conda-meta", "%s-%s-%s.json" % (name, version, build)), "w") as handle:
        json.dump(record, handle, indent=2, sort_keys=True)
    if name == "python":
        os.makedirs(os.path.join(prefix, "bin"), exist_ok=True)
        os.makedirs(os.path.join(prefix, "lib", "python3.11", "site-packages"), exist_ok=True)
        link = os.path.join(prefix, "bin", "python")
        if not os.path.lexists(link):
            os.symlink("/usr/bin/python3", link)
    return "+conda-forge/%s::%s-%s-%s" % (SUBDIR, name, version, build)


def history(prefix, argv, lines, kind, specs):
    with open(os.path.join(prefix, "conda-meta", "history"), "a") as handle:
        handle.write("==> %s <==\n# cmd: %s\n# conda version: %s\n" % (
            time.strftime("%Y-%m-%d %H:%M:%S"), " ".join(["conda"] + argv), CONDA_VERSION))
        for line in lines:
            handle.write(line + "\n")
        handle.write("# %s specs: %s\n" % (kind, list(specs)))  # as conda's history.write_specs: Python's repr


def options(args):
    prefix, rest = None, []
    it = iter(args)
    for arg in it:
        if arg in ("-p", "--prefix"):
            prefix = next(it)
        elif arg in ("-y", "--yes", "-q", "--quiet", "--override-channels", "--"):
            continue
        elif arg in ("-c", "--channel"):
            next(it)
        else:
            rest.append(arg)
    if prefix is None:
        fail("CondaValueError: EnvDesk's conda stand-in needs --prefix.", 2)
    return os.path.abspath(prefix), rest


def main(argv):
    if not argv or argv[0] in ("--version", "-V"):
        print("conda %s (EnvDesk test stand-in)" % CONDA_VERSION)
        return 0
    command, args = argv[0], argv[1:]
    prefix, specs = options(args)
    print("Channels:\n - conda-forge\nPlatform: %s\nCollecting package metadata (repodata.json): done" % SUBDIR)
    if command == "create":
        chosen = resolve(specs)
        os.makedirs(os.path.join(prefix, "conda-meta"), exist_ok=True)
        lines = [write_record(prefix, name, version, spec) for name, version, spec in chosen]
        history(prefix, argv, lines, "update", specs)
    elif command == "install":
        if not os.path.isdir(os.path.join(prefix, "conda-meta")):
            fail("EnvironmentLocationNotFound: Not a conda environment: %s" % prefix)
        chosen = resolve(specs)
        lines = [write_record(prefix, name, version, spec) for name, version, spec in chosen]
        history(prefix, argv, lines, "update", specs)
    elif command == "remove":
        lines = []
        for name in specs:
            path = record_path(prefix, name.lower())
            if path is None:
                fail("PackagesNotFoundError: The following packages are missing from the target environment:"
                     "\n  - %s" % name)
            os.unlink(path)
            lines.append("-" + os.path.basename(path)[:-5])
        history(prefix, argv, lines, "remove", specs)
    else:
        fail("EnvDesk's conda stand-in does not support '%s'." % command, 2)
    print("Executing transaction: done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
