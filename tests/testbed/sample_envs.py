"""Pre-made environments, made for real as the cluster users.

alpha (also seen through otp: same user and home):
    ~/venvs/plainvenv       python -m venv (module python/3.11.5) + pip install tinybeta
    ~/venvs/ve              virtualenv + pip install tinygamma
    ~/venvs/uvenv           uv venv + uv pip install tinyalpha==1.1
    ~/projects/foo/.venv    uv project (uv init --bare, uv add tinybeta)
    ~/.conda/envs/sci       conda-format prefix, hand-written (see below)
    ~/venvs/broken          venv whose base Python folder was removed
beta:
    ~/envs/b1               python -m venv (GCC/12.3.0 Python/3.11.3) + pip install tinyalpha==1.0

The returned description is read back from the disk after the fact (every
distribution in each env's site-packages, with its version), so it is what
is really there, pip/setuptools included.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .software import bed_site_packages

CONDA_SITE = "lib/python3.11/site-packages"
"""The handwritten conda prefix's (its records say Python 3.11.2, whatever Python the machine has)."""


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_packages(site_packages: Path) -> dict[str, str]:
    """{canonical name: version} of what pip lists in site_packages (`pip list --path`): the referee for what an
    environment holds, not a reader of the test bed's own (R16)."""
    if not site_packages.is_dir():
        return {}
    listed = subprocess.run([sys.executable, "-m", "pip", "list", "--path", str(site_packages), "--format", "json",
                             "--disable-pip-version-check"], capture_output=True, text=True, check=True, timeout=120)
    return {_canon(item["name"]): item["version"] for item in json.loads(listed.stdout)}


def read_pyvenv_cfg(env: Path) -> dict[str, str]:
    cfg = {}
    try:
        text = (env / "pyvenv.cfg").read_text()
    except FileNotFoundError:
        return cfg
    for line in text.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            cfg[k.strip()] = v.strip()
    return cfg


def _version3(text: str | None) -> str | None:
    if not text:
        return None
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", text)
    return ".".join(m.groups()) if m else text


def describe_env(path: Path, kind: str, requested: dict[str, str], **extra) -> dict:
    cfg = read_pyvenv_cfg(path)
    python = path / "bin" / "python"
    return {
        "name": extra.pop("name", path.name),
        "path": str(path),
        "kind": kind,
        "broken": not python.exists(),
        "python": str(python),
        "python_version": _version3(cfg.get("version") or cfg.get("version_info")),
        "pyvenv_cfg": cfg,
        "requested": requested,           # what the bed asked to install
        "packages": read_packages(path / bed_site_packages()),  # what is installed (all of it)
        **extra,
    }


# ---------------------------------------------------------------- scripts

def _alpha_scripts(wh: str, py_mods: str, uv_mod: str) -> dict[str, str]:
    find = f"--no-index --find-links {wh}"
    return {
        "plainvenv": f"""set -e
module load {py_mods}
mkdir -p ~/venvs
python -m venv ~/venvs/plainvenv
~/venvs/plainvenv/bin/python -m pip install -q --no-cache-dir {find} tinybeta
""",
        "ve": f"""set -e
module load {py_mods}
mkdir -p ~/venvs
virtualenv -q ~/venvs/ve
~/venvs/ve/bin/python -m pip install -q --no-cache-dir {find} tinygamma
""",
        "uv": f"""set -e
module load {py_mods} {uv_mod}
mkdir -p ~/venvs ~/projects/foo
uv venv -q ~/venvs/uvenv
uv pip install -q --python ~/venvs/uvenv/bin/python {find} tinyalpha==1.1
cd ~/projects/foo
uv init -q --bare --no-workspace --name foo
uv add -q {find} tinybeta
# broken: a venv made from a Python folder that is then removed
gone=~/.local/opt/python-3.11-removed
mkdir -p $gone/bin
ln -sfn /usr/bin/python3 $gone/bin/python3
$gone/bin/python3 -m venv --without-pip ~/venvs/broken
uv pip install -q --python ~/venvs/broken/bin/python {find} tinyalpha==1.0
rm -rf ~/.local/opt/python-3.11-removed
""",
    }


def _beta_script(wh: str, py_mods: str) -> str:
    return f"""set -e
module load {py_mods}
mkdir -p ~/envs
python -m venv ~/envs/b1
~/envs/b1/bin/python -m pip install -q --no-cache-dir --no-index --find-links {wh} tinyalpha==1.0
"""


# ---------------------------------------------------------------- conda

# conda, mamba and micromamba cannot be installed on this machine (not on PyPI
# or in Debian), so this prefix is written by hand in conda's real on-disk
# formats: one conda-meta/<name>-<version>-<build>.json PrefixRecord per
# package, conda-meta/history with "==> date <==" blocks of "+channel/subdir::
# dist" lines, and the prefix listed in ~/.conda/environments.txt.  Hashes,
# sizes and md5s are made up.  bin/python is a stand-in link to
# /usr/bin/python3: it runs, but does not see this prefix's site-packages.
CONDA_PACKAGES = [
    # name, version, build, subdir, depends, requested
    ("libzlib", "1.2.13", "hd590300_5", "linux-64", ["libgcc-ng >=12"], None),
    ("python", "3.11.2", "h2755cc3_0_cpython", "linux-64",
     ["libzlib >=1.2.13,<1.3.0a0", "pip"], "python=3.11"),
    ("pip", "24.0", "pyhd8ed1ab_0", "noarch", ["python >=3.7", "setuptools", "wheel"], None),
    ("numpy", "1.26.4", "py311h64a7726_0", "linux-64",
     ["libblas >=3.9.0,<4.0a0", "python >=3.11,<3.12.0a0", "python_abi 3.11.* *_cp311"],
     "numpy"),
]


def _conda_prefix(home: Path, prefix: Path) -> dict:
    meta = prefix / "conda-meta"
    meta.mkdir(parents=True, exist_ok=True)
    site = prefix / CONDA_SITE
    (prefix / "bin").mkdir(parents=True, exist_ok=True)
    site.mkdir(parents=True, exist_ok=True)
    base_install = home / "miniforge3"  # where `conda` would live; not present here
    ts = 1707225342954
    history_lines = []
    for name, version, build, subdir, depends, requested in CONDA_PACKAGES:
        dist = f"{name}-{version}-{build}"
        files: list[str] = []
        if name == "python":
            for link, target in (("bin/python3.11", "/usr/bin/python3"),
                                 ("bin/python3", "python3.11"), ("bin/python", "python3.11")):
                p = prefix / link
                if p.is_symlink() or p.exists():
                    p.unlink()
                p.symlink_to(target)
                files.append(link)
        if name in ("pip", "numpy"):
            di = site / f"{name}-{version}.dist-info"
            di.mkdir(exist_ok=True)
            (di / "METADATA").write_text(
                f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n")
            (di / "INSTALLER").write_text("conda\n")
            files += [f"{CONDA_SITE}/{di.name}/METADATA", f"{CONDA_SITE}/{di.name}/INSTALLER"]
        channel = "https://conda.anaconda.org/conda-forge"
        record = {
            "arch": None if subdir == "noarch" else "x86_64",
            "build": build,
            "build_number": int(build.rsplit("_", 1)[-1]) if build[-1].isdigit() else 0,
            "channel": f"{channel}/{subdir}",
            "constrains": [],
            "depends": depends,
            "extracted_package_dir": str(base_install / "pkgs" / dist),
            "features": "",
            "files": files,
            "fn": f"{dist}.conda",
            "license": "BSD-3-Clause",
            "link": {"source": str(base_install / "pkgs" / dist), "type": 1},
            "md5": "0" * 32,
            "name": name,
            "package_tarball_full_path": str(base_install / "pkgs" / f"{dist}.conda"),
            "paths_data": {
                "paths": [{"_path": f, "path_type": "hardlink", "sha256": "0" * 64,
                           "size_in_bytes": 0} for f in files],
                "paths_version": 1,
            },
            "platform": None if subdir == "noarch" else "linux",
            "requested_spec": requested or "",
            "sha256": "0" * 64,
            "size": 1000000,
            "subdir": subdir,
            "timestamp": ts,
            "track_features": "",
            "url": f"{channel}/{subdir}/{dist}.conda",
            "version": version,
        }
        if subdir == "noarch":
            record["noarch"] = "python"
            record["package_type"] = "noarch_python"
        (meta / f"{dist}.json").write_text(json.dumps(record, indent=2, sort_keys=True))
        history_lines.append(f"+conda-forge/{subdir}::{dist}")
    (meta / "history").write_text(
        "==> 2024-02-12 10:31:02 <==\n"
        f"# cmd: {base_install}/bin/conda create -n {prefix.name} python=3.11 numpy\n"
        "# conda version: 23.11.0\n"
        + "\n".join(sorted(history_lines)) + "\n"
        "# update specs: ['python=3.11', 'numpy']\n"
    )
    envs_txt = home / ".conda" / "environments.txt"
    envs_txt.parent.mkdir(parents=True, exist_ok=True)
    existing = envs_txt.read_text().splitlines() if envs_txt.exists() else []
    if str(prefix) not in existing:
        envs_txt.write_text("\n".join(existing + [str(prefix)]) + "\n")
    return {
        "name": prefix.name,
        "path": str(prefix),
        "kind": "conda",
        "broken": False,
        "python": str(prefix / "bin" / "python"),
        "python_version": "3.11.2",
        "pyvenv_cfg": {},
        "requested": {"python": "3.11", "numpy": ""},
        "packages": {n: v for n, v, *_ in CONDA_PACKAGES},  # from conda-meta
        "site_packages": read_packages(site),
        "environments_txt": str(envs_txt),
        "handwritten": True,
    }


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            os.lchown(os.path.join(dirpath, n), uid, gid)


# ---------------------------------------------------------------- main


def make_sample_envs(bed) -> dict:
    alpha, beta = bed.clusters["alpha"], bed.clusters["beta"]
    a_home, b_home = alpha.home, beta.home
    scripts = _alpha_scripts(str(alpha.wheelhouse), " ".join(alpha.python_modules),
                             alpha.uv_module)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(alpha.run_as_user, s) for s in scripts.values()]
        futures.append(pool.submit(
            beta.run_as_user,
            _beta_script(str(beta.wheelhouse), " ".join(beta.python_modules))))
        # meanwhile, the hand-written conda prefix
        st = os.stat(a_home)
        conda_home = a_home / ".conda"
        sci = _conda_prefix(a_home, conda_home / "envs" / "sci")
        _chown_tree(conda_home, st.st_uid, st.st_gid)
        for f in futures:
            f.result()

    venvs = a_home / "venvs"
    a = {
        "plainvenv": describe_env(venvs / "plainvenv", "venv", {"tinybeta": ""},
                                  made_with=f"module load {' '.join(alpha.python_modules)}; "
                                            "python -m venv; pip install"),
        "ve": describe_env(venvs / "ve", "virtualenv", {"tinygamma": ""},
                           made_with="virtualenv; pip install"),
        "uvenv": describe_env(venvs / "uvenv", "uv", {"tinyalpha": "1.1"},
                              made_with="uv venv; uv pip install"),
        "foo": describe_env(a_home / "projects" / "foo" / ".venv", "uv-project",
                            {"tinybeta": ""}, name="foo",
                            project_dir=str(a_home / "projects" / "foo"),
                            made_with="uv init --bare; uv add"),
        "sci": sci,
        "broken": describe_env(venvs / "broken", "venv", {"tinyalpha": "1.0"},
                               made_with="python -m venv --without-pip; uv pip install; "
                                         "then its base Python folder was removed"),
    }
    b = {
        "b1": describe_env(b_home / "envs" / "b1", "venv", {"tinyalpha": "1.0"},
                           made_with=f"module load {' '.join(beta.python_modules)}; "
                                     "python -m venv; pip install"),
    }
    # sanity: what the bed promises
    assert a["broken"]["broken"] and not Path(a["broken"]["pyvenv_cfg"]["home"]).exists()
    for env in (*a.values(), *b.values()):
        if env["name"] != "broken":
            assert not env["broken"], env
    return {"alpha": a, "otp": a, "beta": b, "password": {}}

