"""Helpers for tests of the agent (backend/agent/): load it as sent, build environment folders on disk.

The agent is script parts put together by envdesk.backend.agent_client.agent_script; load_agent runs
exactly that text as a module, so tests call (and patch) the very code a cluster receives.

venv, virtualenv and uv environments are made for real with the tools
themselves. Conda can't be installed here, so conda prefixes are hand-written
in conda's own on-disk format: one ``conda-meta/<name>-<version>-<build>.json``
record per package (keys sorted, indent 2, as conda writes them) and a
``conda-meta/history`` file with ``==> date <==`` blocks.
"""

import contextlib
import glob
import json
import linecache
import os
import resource
import shutil
import subprocess
import sys
import types
from collections.abc import Iterator

from envdesk.backend import agent_here
from envdesk.backend.agent_client import agent_script
from envdesk.backend.protocol import ANSWER_MARKER

PY_XY = "%d.%d" % sys.version_info[:2]
PY_XYZ = "%d.%d.%d" % sys.version_info[:3]


def load_agent(write=True):
    """The agent script as EnvDesk sends it (with its write part unless write=False), run as a module."""
    source = agent_script(write=write)
    filename = "<envdesk agent%s>" % ("" if write else ", read part only")
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # readable tracebacks
    module = types.ModuleType("envdesk_agent")
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)
    return module


@contextlib.contextmanager
def umask_set(mask: int) -> Iterator[None]:
    """This process's umask set to `mask` for the block, then put back; what the agent loaded in this process
    (agent_here: This computer's short actions) read of it is forgotten both times. That agent reads the umask
    once per process (setting it to read it, where there is no /proc, would touch other threads' files), which on
    a cluster is the agent's whole life, where the umask never changes; in a test session it would be stale."""
    def forget() -> None:
        for namespace in list(agent_here._loaded.values()):
            namespace.get("_UMASK", []).clear()

    old = os.umask(mask)
    forget()
    try:
        yield
    finally:
        os.umask(old)
        forget()


def uv_bin():
    """Path of the uv program shipped by the 'uv' PyPI package."""
    import uv
    return uv.find_uv_bin()


def make_venv(path, tool="venv", system_site_packages=False):
    """Create a real environment at path with venv, virtualenv or uv; returns path."""
    path = str(path)
    if tool == "venv":
        cmd = [sys.executable, "-m", "venv", "--without-pip"]
        if system_site_packages:
            cmd.append("--system-site-packages")
        cmd.append(path)
    elif tool == "virtualenv":
        cmd = [sys.executable, "-m", "virtualenv", "-q", "--no-seed", "--no-periodic-update", path]
    elif tool == "uv":
        cmd = [uv_bin(), "venv", "-q", "--python", sys.executable, path]
    else:
        raise ValueError(tool)
    subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return path


def make_fake_venv(path, version=PY_XYZ, home=None, extra_cfg="", lib_version=None):
    """Hand-write a minimal venv (pyvenv.cfg, bin/python link, site-packages); fast.

    version=None leaves the 'version' line out of pyvenv.cfg; lib_version
    (default: X.Y of version, else this Python's) names lib/pythonX.Y.
    """
    path = str(path)
    lib_version = lib_version or ".".join((version or PY_XY).split(".")[:2])
    site = os.path.join(path, "lib", "python" + lib_version, "site-packages")
    os.makedirs(site)
    os.makedirs(os.path.join(path, "bin"))
    os.symlink(sys.executable, os.path.join(path, "bin", "python"))
    home = home or os.path.dirname(sys.executable)
    lines = ["home = " + home, "include-system-site-packages = false"]
    if version:
        lines.append("version = " + version)
    with open(os.path.join(path, "pyvenv.cfg"), "w") as handle:
        handle.write("\n".join(lines) + "\n" + extra_cfg)
    return path


def site_packages(env):
    """The single lib/python*/site-packages folder of a POSIX environment."""
    found = glob.glob(os.path.join(str(env), "lib", "python*", "site-packages"))
    assert len(found) == 1, found
    return found[0]


def add_dist(site, name, version, installer="pip", requested=False, url=None,
             editable=False, summary="A package.", metadata=None):
    """Write a *.dist-info folder like pip/uv do; returns its path."""
    folder = os.path.join(str(site), "%s-%s.dist-info" % (name.replace("-", "_"), version))
    os.makedirs(folder)
    if metadata is None:
        metadata = ("Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: %s\n"
                    "Requires-Dist: something\n\nLong description.\n" % (name, version, summary))
    mode = "wb" if isinstance(metadata, bytes) else "w"
    with open(os.path.join(folder, "METADATA"), mode) as handle:
        handle.write(metadata)
    if installer is not None:
        with open(os.path.join(folder, "INSTALLER"), "w") as handle:
            handle.write(installer + "\n")
    if requested:
        open(os.path.join(folder, "REQUESTED"), "w").close()
    if url is not None:
        data = {"url": url}
        data["dir_info"] = {"editable": True} if editable else {}
        with open(os.path.join(folder, "direct_url.json"), "w") as handle:
            json.dump(data, handle)
    return folder


def conda_record(name, version, build="h0_0",
                 channel="https://conda.anaconda.org/conda-forge/linux-64"):
    """A conda-meta record dict shaped like the ones conda writes."""
    subdir = channel.rstrip("/").split("/")[-1] if "/" in channel else "linux-64"
    fn = "%s-%s-%s.conda" % (name, version, build)
    return {
        "build": build,
        "build_number": 0,
        "channel": channel,
        "constrains": [],
        "depends": ["libgcc-ng >=12"],
        "extracted_package_dir": "/opt/conda/pkgs/%s-%s-%s" % (name, version, build),
        "files": ["lib/lib%s.so" % name, "share/doc/%s/README" % name],
        "fn": fn,
        "license": "BSD-3-Clause",
        "link": {"source": "/opt/conda/pkgs/%s-%s-%s" % (name, version, build), "type": 1},
        "md5": "0" * 32,
        "name": name,
        "paths_data": {"paths": [{"_path": "lib/lib%s.so" % name, "path_type": "hardlink",
                                  "sha256": "0" * 64, "size_in_bytes": 10}],
                       "paths_version": 1},
        "requested_spec": "None",
        "sha256": "0" * 64,
        "size": 1234,
        "subdir": subdir,
        "timestamp": 1700000000000,
        "track_features": "",
        "url": channel + "/" + fn,
        "version": version,
    }


def make_conda_prefix(prefix, records=(), history=None, python=None, base=False):
    """Hand-write a conda prefix in conda's format; returns its path.

    records: conda_record() dicts; python: version string to add a python
    record, bin/python and lib/pythonX.Y/site-packages; history: text of
    conda-meta/history; base: make it look like a root install (condabin/, envs/).
    """
    prefix = str(prefix)
    meta = os.path.join(prefix, "conda-meta")
    os.makedirs(meta)
    records = list(records)
    if python:
        records.append(conda_record("python", python, "h955ad1f_0",
                                    "https://repo.anaconda.com/pkgs/main/linux-64"))
        xy = ".".join(python.split(".")[:2])
        os.makedirs(os.path.join(prefix, "lib", "python" + xy, "site-packages"))
        os.makedirs(os.path.join(prefix, "bin"))
        os.symlink(sys.executable, os.path.join(prefix, "bin", "python"))
    for record in records:
        fname = "%s-%s-%s.json" % (record["name"], record["version"], record["build"])
        with open(os.path.join(meta, fname), "w") as handle:
            json.dump(record, handle, indent=2, sort_keys=True)
    if history is not None:
        with open(os.path.join(meta, "history"), "w") as handle:
            handle.write(history)
    if base:
        os.makedirs(os.path.join(prefix, "condabin"))
        os.makedirs(os.path.join(prefix, "envs"), exist_ok=True)
    return prefix


def history_block(date, cmd, specs=None, removed=None, lines=(), conda_version="23.7.4"):
    """One '==> date <==' block of conda-meta/history, as conda writes it."""
    out = ["==> %s <==" % date, "# cmd: " + cmd, "# conda version: " + conda_version]
    out += list(lines)
    if specs is not None:
        out.append("# update specs: %s" % (list(specs),))
    if removed is not None:
        out.append("# remove specs: %s" % (list(removed),))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------
# Hostile files, and running the agent for real under a memory cap
# ---------------------------------------------------------------------------

def _clear(path):
    """Remove whatever is at path (file, link or pipe) so something else can take its place."""
    if os.path.lexists(path):
        os.unlink(path)


def make_fifo(path):
    """Put a named pipe (FIFO) at path, in place of any file there; opening it to read blocks."""
    path = str(path)
    _clear(path)
    os.mkfifo(path)
    return path


def make_link(path, target):
    """Put a symbolic link to target (e.g. /dev/zero) at path, in place of any file there."""
    path = str(path)
    _clear(path)
    os.symlink(target, path)
    return path


def make_sparse(path, size, head=b""):
    """Put a sparse file of size bytes (zeros after head, no disk space used) at path."""
    path = str(path)
    _clear(path)
    with open(path, "wb") as handle:
        handle.write(head)
        handle.truncate(size)
    return path


def old_pythons():
    """Python 3.6/3.7 interpreters on this machine (pyenv or PATH), at most one of each."""
    found = []
    for version in ("3.6", "3.7"):
        candidates = sorted(glob.glob("/root/.pyenv/versions/%s.*/bin/python%s" % (version, version)))
        exe = shutil.which("python" + version)
        for path in candidates + ([exe] if exe else []):
            try:
                subprocess.run([path, "-c", "pass"], check=True, timeout=30,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            except (OSError, subprocess.SubprocessError):
                continue
            found.append(path)
            break
    return found


def old_pythons_to_test():
    """old_pythons(), for a test of the agent's promise to run on Python 3.6+: it skips without them, except under
    CI=true, where it fails (the machines CI runs on have them, from pyenv)."""
    import pytest
    found = old_pythons()
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail("no Python 3.6/3.7 interpreter under CI: the agent is tested on them (pyenv install 3.6 "
                        "3.7)", pytrace=False)
        pytest.skip("no Python 3.6/3.7 interpreter on this machine")
    return found


def limit_memory(max_bytes):
    """A preexec_fn capping the child's address space: reading /dev/zero whole then fails fast."""
    def apply():
        resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))
    return apply


def run_agent_for_real(config, environ, exe=None, write=False, max_bytes=512 * 1024 * 1024, timeout=60):
    """Feed the agent to a real Python on stdin under an address-space cap; (returncode, answer, stderr).

    timeout only guards against a hang (subprocess.TimeoutExpired fails the test).
    """
    proc = subprocess.run([exe or sys.executable, "-", json.dumps(config)],
                          input=agent_script(write=write).encode("utf-8"), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=environ, timeout=timeout,
                          preexec_fn=limit_memory(max_bytes))
    lines = proc.stdout.decode("ascii").splitlines()
    assert len(lines) == 1 and lines[0].startswith(ANSWER_MARKER), (proc.stdout, proc.stderr)
    return proc.returncode, json.loads(lines[0][len(ANSWER_MARKER):]), proc.stderr.decode()


CONDA_VARS = ("CONDA_ENVS_PATH", "CONDA_ENVS_DIRS", "CONDARC", "XDG_CONFIG_HOME")
"""The machine's conda settings, which must not leak into an agent under test."""


def isolated_home(tmp_path, monkeypatch, agent) -> str:
    """A fresh, empty HOME for `agent` (a module from load_agent): no conda settings from the machine."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in CONDA_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(agent, "SYSTEM_CONDARCS", [])
    return home


def clean_env(home) -> dict:
    """os.environ for an agent's own process: HOME replaced, conda settings removed."""
    env = {k: v for k, v in os.environ.items() if k not in CONDA_VARS}
    env["HOME"] = str(home)
    return env
