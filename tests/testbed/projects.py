"""Real source projects on a test-bed cluster, installable offline by pip and uv.

There is no network and no setuptools or hatchling in the wheelhouses, so a
project carries its own PEP 517 build backend (`tinybackend.py`, stdlib only,
found through `backend-path = ["."]`, `requires = []`): build_wheel,
build_sdist, build_editable (PEP 660: a wheel holding only a .pth file that
puts the project folder on sys.path) and the optional hooks.

    ~/src/NAME/
        pyproject.toml      [build-system] + static [project] name/version/dependencies
        tinybackend.py      the backend
        NAME/__init__.py    __version__ = "VERSION"
        .gitignore

make_project(cluster, NAME, VERSION, git=True) makes it a git repository with
one commit (as the cluster's user, so everything is theirs); add_commit()
bumps the version in a second commit, so that a test can prove that an old
commit URL still installs the old version.

    info = make_project(cluster, "projx", "1.0", git=True)
    info.requirement()   # 'projx @ git+file:///HOME/src/projx@<40 hex>'
    new = add_commit(cluster, info, "2.0")
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from typing import Sequence

NAME_RE = re.compile(r"^[a-z][a-z0-9]*$")  # one spelling everywhere (no -_. normalisation)
VERSION_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
GIT_USER = ("EnvDesk Test Bed", "testbed@envdesk.invalid")


@dataclass(frozen=True)
class ProjectInfo:
    """A project made by make_project.  commit is None for git=False."""

    name: str
    version: str          # the version in the folder when it was made (at `commit`)
    path: str             # absolute folder on the cluster, e.g. /tmp/.../home/USER/src/NAME
    commit: str | None    # full 40-hex id of HEAD when it was made
    origin: str | None = None  # remote "origin" URL (clone_project), else None

    @property
    def git(self) -> bool:
        return self.commit is not None

    @property
    def file_url(self) -> str:
        """file:///PATH (how uv and direct_url.json spell the folder)."""
        return f"file://{self.path}"

    @property
    def repo_url(self) -> str:
        """git+file:///PATH, without a revision."""
        return f"git+file://{self.path}"

    def vcs_url(self, commit: str | None = None) -> str:
        """git+file:///PATH@COMMIT (the first commit unless told)."""
        rev = commit or self.commit
        if rev is None:
            raise ValueError(f"{self.name} at {self.path} is not a git repository")
        return f"{self.repo_url}@{rev}"

    def requirement(self, commit: str | None = None, *, localhost: bool = False) -> str:
        """'NAME @ git+file:///PATH@COMMIT', a PEP 508 direct reference (what
        uv and pip freeze print).  pip < 24.1 (vendored packaging 21.3, e.g. the
        bed's pip 23.0.1) refuses it: "Invalid URL", since the URL has no host
        (pypa/pip#7650, #10098, #12124); localhost=True gives the spelling it
        takes, git+file://localhost/PATH@COMMIT (pip freeze then echoes it)."""
        url = self.vcs_url(commit)
        if localhost:
            url = url.replace("git+file://", "git+file://localhost", 1)
        return f"{self.name} @ {url}"

    def pip_url(self, commit: str | None = None) -> str:
        """git+file:///PATH@COMMIT#egg=NAME, pip's own VCS form (every pip takes it)."""
        return f"{self.vcs_url(commit)}#egg={self.name}"

    @property
    def init_file(self) -> str:
        """The package's __init__.py in the source folder (what an editable import gives)."""
        return f"{self.path}/{self.name}/__init__.py"


# ---------------------------------------------------------------- the backend

TINYBACKEND = r'''"""A PEP 517 / PEP 660 build backend with no dependencies (EnvDesk test bed).

Reads [project] name, version and dependencies from pyproject.toml; the
package is the folder named after the project.  Hooks run with the project
folder as the current directory (PEP 517).
"""

import base64
import hashlib
import io
import os
import re
import tarfile
import time
import zipfile

_DATE = (2024, 1, 1, 0, 0, 0)
_SKIP_DIRS = {"__pycache__", ".git"}


def _project():
    text = open("pyproject.toml", encoding="utf-8").read()
    try:
        import tomllib
    except ImportError:  # Python < 3.11: the few static fields this backend writes
        name = re.search(r'(?m)^name\s*=\s*"([^"]+)"', text).group(1)
        version = re.search(r'(?m)^version\s*=\s*"([^"]+)"', text).group(1)
        block = re.search(r"(?ms)^dependencies\s*=\s*\[(.*?)\]", text)
        deps = re.findall(r'"([^"]+)"', block.group(1)) if block else []
        return name, version, deps
    project = tomllib.loads(text)["project"]
    deps = list(project.get("dependencies", []))
    for extra, wanted in project.get("optional-dependencies", {}).items():  # each as a dependency of its extra
        deps += [f'{d.split(";")[0]} ; ' + (f'({d.split(";", 1)[1].strip()}) and ' if ";" in d else "")
                 + f'extra == "{extra}"' for d in wanted]
    return project["name"], project["version"], deps


def _dist_info():
    name, version, _ = _project()
    return f"{name}-{version}.dist-info"


def _metadata():
    name, version, deps = _project()
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
             f"Summary: EnvDesk test bed project {name}"]
    extras = sorted(set(re.findall(r"extra\s*==\s*['\"]([^'\"]+)['\"]", " ".join(deps))))
    lines += [f"Provides-Extra: {extra}" for extra in extras]  # a dependency marked `extra == "dev"` makes it one
    lines += [f"Requires-Dist: {d}" for d in deps]
    return "\n".join(lines) + "\n\n"


_WHEEL = "Wheel-Version: 1.0\nGenerator: tinybackend\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def _hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _write_wheel(wheel_directory, payload):
    """payload: {archive name: bytes}; adds the dist-info and returns the basename."""
    name, version, _ = _project()
    dist_info = _dist_info()
    files = dict(payload)
    files[f"{dist_info}/METADATA"] = _metadata().encode()
    files[f"{dist_info}/WHEEL"] = _WHEEL.encode()
    basename = f"{name}-{version}-py3-none-any.whl"
    os.makedirs(wheel_directory, exist_ok=True)
    record = []
    with zipfile.ZipFile(os.path.join(wheel_directory, basename), "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in files.items():
            info = zipfile.ZipInfo(arcname, date_time=_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
            record.append(f"{arcname},{_hash(data)},{len(data)}")
        record.append(f"{dist_info}/RECORD,,")
        info = zipfile.ZipInfo(f"{dist_info}/RECORD", date_time=_DATE)
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, "\n".join(record) + "\n")
    return basename


def _package_files(prefix=""):
    name, _, _ = _project()
    out = {}
    for dirpath, dirnames, filenames in os.walk(name):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for f in sorted(filenames):
            if f.endswith((".pyc", ".pyo")):
                continue
            path = os.path.join(dirpath, f)
            with open(path, "rb") as handle:
                out[prefix + path.replace(os.sep, "/")] = handle.read()
    return out


# ---------------------------------------------------------------- PEP 517

def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    dist_info = _dist_info()
    folder = os.path.join(metadata_directory, dist_info)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "METADATA"), "w", encoding="utf-8") as handle:
        handle.write(_metadata())
    with open(os.path.join(folder, "WHEEL"), "w", encoding="utf-8") as handle:
        handle.write(_WHEEL)
    return dist_info


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, _package_files())


def build_sdist(sdist_directory, config_settings=None):
    name, version, _ = _project()
    base = f"{name}-{version}"
    files = {f"{base}/PKG-INFO": _metadata().encode()}
    for extra in ("pyproject.toml", "tinybackend.py"):
        with open(extra, "rb") as handle:
            files[f"{base}/{extra}"] = handle.read()
    files.update(_package_files(prefix=f"{base}/"))
    os.makedirs(sdist_directory, exist_ok=True)
    basename = f"{base}.tar.gz"
    with tarfile.open(os.path.join(sdist_directory, basename), "w:gz", format=tarfile.PAX_FORMAT) as tf:
        for arcname, data in files.items():
            info = tarfile.TarInfo(arcname)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = int(time.mktime(_DATE + (0, 0, -1)))
            tf.addfile(info, io.BytesIO(data))
    return basename


# ---------------------------------------------------------------- PEP 660

def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
    return prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    name, version, _ = _project()
    pth = (os.path.abspath(os.getcwd()) + "\n").encode()
    return _write_wheel(wheel_directory, {f"__editable__.{name}-{version}.pth": pth})
'''


def _pyproject(name: str, version: str, dependencies: Sequence[str]) -> str:
    deps = "".join(f"    {json.dumps(d)},\n" for d in dependencies)
    return (
        "[build-system]\n"
        "requires = []\n"
        'build-backend = "tinybackend"\n'
        'backend-path = ["."]\n'
        "\n"
        "[project]\n"
        f'name = "{name}"\n'
        f'version = "{version}"\n'
        'description = "EnvDesk test bed project"\n'
        f"dependencies = [\n{deps}]\n"
    )


def _init_py(name: str, version: str) -> str:
    return f'"""EnvDesk test bed project {name}."""\n__version__ = "{version}"\n'


# Writes {relative path: text} (JSON on stdin) under the folder given as argv[1].
_WRITER = (
    "import json, os, sys\n"
    "root = sys.argv[1]\n"
    "for rel, text in json.load(sys.stdin).items():\n"
    "    path = os.path.join(root, rel)\n"
    "    os.makedirs(os.path.dirname(path), exist_ok=True)\n"
    "    with open(path, 'w', encoding='utf-8') as handle:\n"
    "        handle.write(text)\n"
)


def _git_setup(folder: str) -> str:
    q = shlex.quote
    return (
        f"cd {q(folder)}\n"
        "git -c init.defaultBranch=main init -q\n"
        f"git config user.name {q(GIT_USER[0])}\n"
        f"git config user.email {q(GIT_USER[1])}\n"
        "git config commit.gpgsign false\n"
    )


def _commit(message: str) -> str:
    return (
        "git add -A\n"
        f"git commit -q -m {shlex.quote(message)}\n"
        "echo COMMIT=$(git rev-parse HEAD)\n"
    )


def _commit_from(stdout: str) -> str:
    found = re.findall(r"^COMMIT=([0-9a-f]{40})$", stdout, re.M)
    if not found:
        raise RuntimeError(f"no commit id in the output:\n{stdout}")
    return found[-1]


def make_project(cluster, name: str, version: str, *, git: bool,
                 dependencies: Sequence[str] = (), parent: str = "src") -> ProjectInfo:
    """Create ~/PARENT/NAME on cluster as its user (refused if it exists).

    name: lower-case letters and digits (the distribution and package name);
    dependencies: PEP 508 strings for Requires-Dist (from the wheelhouse).
    With git=True the folder is a git repository (branch main) with one commit.
    """
    if not NAME_RE.match(name):
        raise ValueError(f"project name {name!r}: use lower-case letters and digits")
    if not VERSION_RE.match(version):
        raise ValueError(f"version {version!r}: use N[.N...]")
    folder = f"{cluster.home}/{parent}/{name}"
    files = {
        "pyproject.toml": _pyproject(name, version, dependencies),
        "tinybackend.py": TINYBACKEND,
        f"{name}/__init__.py": _init_py(name, version),
        ".gitignore": "__pycache__/\n*.pyc\nbuild/\ndist/\n",
    }
    q = shlex.quote
    script = (
        "set -e\n"
        f"if [ -e {q(folder)} ]; then echo 'already exists: {folder}' >&2; exit 3; fi\n"
        f"mkdir -p {q(folder)}\n"
        f"/usr/bin/python3 -c {q(_WRITER)} {q(folder)}\n"
    )
    if git:
        script += _git_setup(folder) + _commit(f"{name} {version}")
    result = cluster.run_as_user(script, input=json.dumps(files), timeout=60)
    commit = _commit_from(result.stdout) if git else None
    return ProjectInfo(name=name, version=version, path=folder, commit=commit)


def add_commit(cluster, info: ProjectInfo, new_version: str) -> str:
    """Bump the project's version (pyproject.toml and __init__.py) in a new commit; its id."""
    if not info.git:
        raise ValueError(f"{info.name} at {info.path} is not a git repository")
    if not VERSION_RE.match(new_version):
        raise ValueError(f"version {new_version!r}: use N[.N...]")
    read = cluster.run_as_user(f"cat {shlex.quote(info.path)}/pyproject.toml").stdout
    deps = re.search(r"(?ms)^dependencies = \[\n(.*?)\]", read)
    dependencies = [json.loads(line.strip().rstrip(","))
                    for line in (deps.group(1).splitlines() if deps else []) if line.strip()]
    files = {
        "pyproject.toml": _pyproject(info.name, new_version, dependencies),
        f"{info.name}/__init__.py": _init_py(info.name, new_version),
    }
    q = shlex.quote
    script = (
        "set -e\n"
        f"/usr/bin/python3 -c {q(_WRITER)} {q(info.path)}\n"
        f"cd {q(info.path)}\n"
        + _commit(f"{info.name} {new_version}")
    )
    result = cluster.run_as_user(script, input=json.dumps(files), timeout=60)
    return _commit_from(result.stdout)


def clone_project(cluster, info: ProjectInfo, folder: str, *, parent: str = "src") -> ProjectInfo:
    """`git clone` info's repository into ~/PARENT/FOLDER (as the cluster's user).

    The clone has remote "origin" = info.path, so pip freeze of an editable
    install of it prints `-e git+file:///ORIGIN@COMMIT#egg=NAME` (for an
    editable of a repository without a remote it prints `-e /PATH`).
    """
    if not info.git:
        raise ValueError(f"{info.name} at {info.path} is not a git repository")
    if not NAME_RE.match(folder):
        raise ValueError(f"folder {folder!r}: use lower-case letters and digits")
    dest = f"{cluster.home}/{parent}/{folder}"
    q = shlex.quote
    script = (
        "set -e\n"
        f"mkdir -p {q(str(cluster.home))}/{q(parent)}\n"
        f"git clone -q {q(info.path)} {q(dest)}\n"
        + _git_setup(dest)
        + "echo COMMIT=$(git rev-parse HEAD)\n"
        "echo VERSION=$(sed -n 's/^version = \"\\(.*\\)\"$/\\1/p' pyproject.toml)\n"
    )
    result = cluster.run_as_user(script, timeout=60)
    version = re.findall(r"^VERSION=(\S+)$", result.stdout, re.M)[-1]
    return ProjectInfo(name=info.name, version=version, path=dest,
                       commit=_commit_from(result.stdout), origin=info.path)
