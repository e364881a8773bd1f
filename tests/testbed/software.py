"""Software and Lmod module trees of the fake clusters.

Python: only the system Python 3.11 exists here (other versions cannot be
downloaded), so each cluster's "Python module" is a folder of links to
/usr/bin/python3 under the version its site would call it.

virtualenv: the test runner's copy lives under /root (mode 0700), which the
cluster users cannot read, so the installed distributions' files (virtualenv
and its requirements, pure Python, with virtualenv's embedded seed wheels)
are copied into a shared folder and run by a `virtualenv` wrapper script.

uv: a copy of the test runner's uv binary (from the `uv` package).

scipy-stack: alpha's tree also has a module shaped like the Digital Research Alliance of Canada's
`scipy-stack` (user trial T20): it puts a folder of packages first on PYTHONPATH, so every Python run with it
loaded imports those before an environment's own. The folder is filled by `pip install --target` from tiny
wheels (STACK_PACKAGES): two that the wheelhouses also have, at other versions than an environment may want
(tinyalpha, tinybeta), and one that no wheelhouse has (tinysci, like a site's own build of scipy).
"""

from __future__ import annotations

import functools
import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"


@functools.cache
def bed_python_version() -> str:
    """X.Y.Z of SYSTEM_PYTHON, the Python every module of the bed provides, as that Python says
    (platform.python_version()): the referee for the version of an environment made on the bed (3.11.2 on
    Debian 12; another on another machine, so that no test may write it)."""
    return subprocess.run([SYSTEM_PYTHON, "-c", "import platform; print(platform.python_version())"],
                          capture_output=True, text=True, check=True, timeout=60).stdout.strip()


def bed_site_packages() -> str:
    """lib/pythonX.Y/site-packages: where an environment made from the bed's Python keeps its packages."""
    return "lib/python{}.{}/site-packages".format(*bed_python_version().split(".")[:2])


@dataclass
class ModuleTree:
    modulepath: Path          # folder given to Lmod as MODULEPATH
    python_modules: list[str]  # what to `module load` (in order) for Python
    has_uv_module: bool
    uv_module: str | None = None


def _mkdirs(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write(path: Path, text: str, mode: int = 0o644) -> Path:
    _mkdirs(path.parent)
    path.write_text(text)
    path.chmod(mode)
    return path


# ------------------------------------------------------------------ virtualenv


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_closure(root: str) -> list[md.Distribution]:
    """root's distribution and, recursively, its requirements (markers evaluated)."""
    from packaging.requirements import Requirement

    seen: dict[str, md.Distribution] = {}
    todo = [root]
    while todo:
        name = _canon(todo.pop())
        if name in seen:
            continue
        dist = md.distribution(name)
        seen[name] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            todo.append(req.name)
    return list(seen.values())


def _link_or_copy(src: Path, dest: Path, mode: int) -> None:
    """Hard link src at dest if its mode already is mode (same bytes, no copy
    cost), else copy it and set mode.  Never chmod a link: that is src's inode."""
    if os.stat(src).st_mode & 0o777 == mode:
        try:
            os.link(src, dest)
            return
        except OSError:
            pass
    shutil.copy2(src, dest)
    os.chmod(dest, mode)


def install_virtualenv_lib(dest: Path) -> list[str]:
    """Copy virtualenv and its requirements' files into dest (a PYTHONPATH folder).

    Returns the copied distributions as 'name==version'.
    """
    _mkdirs(dest)
    copied = []
    for dist in _requirement_closure("virtualenv"):
        root = Path(dist.locate_file(""))
        for rel in dist.files or []:
            rel_s = str(rel)
            if rel_s.startswith(".."):  # console scripts in bin/: not needed
                continue
            src = root / rel_s
            if not src.is_file():
                continue
            target = dest / rel_s
            target.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(src, target, 0o644)
        copied.append(f"{dist.metadata['Name']}=={dist.version}")
    for dirpath, _dirnames, _ in os.walk(dest):
        os.chmod(dirpath, 0o755)
    return copied


def _python_bin(bin_dir: Path, virtualenv_lib: Path) -> Path:
    """python, python3, python3.11 -> /usr/bin/python3, plus a virtualenv wrapper."""
    _mkdirs(bin_dir)
    for name in ("python", "python3", "python3.11"):
        link = bin_dir / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(SYSTEM_PYTHON)
    _write(
        bin_dir / "virtualenv",
        "#!/bin/sh\n"
        "# EnvDesk test bed: virtualenv from a shared copy of the test runner's\n"
        "# virtualenv distribution (pure Python), run by this module's python3.\n"
        f'PYTHONPATH="{virtualenv_lib}${{PYTHONPATH:+:$PYTHONPATH}}" '
        f'exec "{bin_dir / "python3"}" -m virtualenv "$@"\n',
        0o755,
    )
    return bin_dir


# ------------------------------------------------------------------ uv


def install_uv(bin_dir: Path) -> Path:
    """A copy of the test runner's uv (and uvx) in bin_dir; returns the uv path."""
    import uv  # the `uv` package of the test environment

    src = Path(uv.find_uv_bin())
    _mkdirs(bin_dir)
    for name in ("uv", "uvx"):
        s = src.with_name(name)
        if not s.exists():
            continue
        d = bin_dir / name
        if d.exists():
            d.unlink()
        _link_or_copy(s, d, 0o755)
    return bin_dir / "uv"


# ------------------------------------------------------------------ module trees


# ------------------------------------------------------------------ scipy-stack

STACK_MODULE = "scipy-stack/2023b"
STACK_PACKAGES = {"tinyalpha": "1.1", "tinybeta": "1.0", "tinysci": "1.11.4"}
"""What the stack module's folder holds (name -> version): what Python imports with it loaded."""
STACK_ONLY = ("tinysci", "1.11.4")
"""The stack's package that no wheelhouse has (built here, for the stack's folder only)."""


def install_stack(folder: Path, wheels_dir: Path) -> Path:
    """Fill `folder` with STACK_PACKAGES by `pip install --target`, as a site installs its stack's packages, from
    the test bed's wheels (`wheels_dir`, where the stack's own wheel is built too); readable by every user."""
    from .wheels import WheelSpec, build_wheel

    stack_wheels = _mkdirs(folder.parent / "wheels")
    build_wheel(stack_wheels, WheelSpec(*STACK_ONLY))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--disable-pip-version-check",
                    "--no-compile", "--find-links", str(wheels_dir), "--find-links", str(stack_wheels),
                    "--target", str(folder), *(f"{name}=={version}" for name, version in STACK_PACKAGES.items())],
                   check=True, capture_output=True, text=True, timeout=300)
    for dirpath, _dirnames, filenames in os.walk(folder):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
    return folder


def _stack_module(mods: Path, root: Path, wheels_dir: Path) -> None:
    """STACK_MODULE: prepends PYTHONPATH with a folder of packages, as the Alliance's scipy-stack does."""
    name, _, version = STACK_MODULE.partition("/")
    site = install_stack(root / "software" / name / version / "lib" / "python3.11" / "site-packages", wheels_dir)
    _write(
        mods / name / f"{version}.lua",
        f"""help([[A stack of scientific packages on PYTHONPATH (EnvDesk test bed stand-in for scipy-stack)]])
whatis("Name: {name}")
whatis("Version: {version}")
prepend_path("PYTHONPATH", "{site}")
""",
    )


def _python_module(mods: Path, root: Path, virtualenv_lib: Path) -> None:
    """`python/3.11.5`, as alpha and cc name it."""
    py_bin = _python_bin(root / "software" / "python" / "3.11.5" / "bin", virtualenv_lib)
    _write(
        mods / "python" / "3.11.5.lua",
        f"""help([[Python 3.11.5 (EnvDesk test bed: python3 here is the system Python 3.11)]])
whatis("Name: python")
whatis("Version: 3.11.5")
whatis("Description: Python programming language")
family("python")
prepend_path("PATH", "{py_bin}")
""",
    )


def build_alpha_tree(root: Path, virtualenv_lib: Path, wheels_dir: Path) -> ModuleTree:
    """`python/3.11.5`, `uv/0.13` and STACK_MODULE, lower-case names as on many Lmod sites (`wheels_dir`: the
    test bed's wheels, for the stack's folder)."""
    mods = _mkdirs(root / "modulefiles")
    _python_module(mods, root, virtualenv_lib)
    uv_bin = install_uv(root / "software" / "uv" / "0.13" / "bin").parent
    _write(
        mods / "uv" / "0.13.lua",
        f"""help([[uv 0.13: an extremely fast Python package and project manager]])
whatis("Name: uv")
whatis("Version: 0.13")
prepend_path("PATH", "{uv_bin}")
""",
    )
    _stack_module(mods, root, wheels_dir)
    return ModuleTree(mods, ["python/3.11.5"], True, "uv/0.13")


def _easybuild_lua(name: str, version: str, help_text: str, prefix: Path, before: str = "", after: str = "") -> str:
    """A module file as EasyBuild writes one for `name`/`version` installed in `prefix` (bin/ on PATH,
    $EBROOT<NAME> and $EBVERSION<NAME> set, a '-' in NAME written MIN as EasyBuild does), with `before` its settings
    and `after` its last lines."""
    return f"""help([[{help_text}]])
whatis("Name: {name}")
whatis("Version: {version}")
{before}local root = "{prefix}"
prepend_path("PATH", pathJoin(root, "bin"))
setenv("EBROOT{name.upper().replace("-", "MIN")}", root)
setenv("EBVERSION{name.upper().replace("-", "MIN")}", "{version}")
{after}"""


def _gcc_lua(version: str, prefix: Path, before: str = "", after: str = "") -> str:
    return _easybuild_lua("GCC", version, f"The GNU Compiler Collection {version} (EnvDesk test bed stand-in)", prefix,
                          before, after)


def _python_lua(version: str, prefix: Path, before: str = "") -> str:
    return _easybuild_lua("Python", version, f"Python {version} (EnvDesk test bed: python3 here is the system Python "
                          "3.11)", prefix, before)


def build_beta_tree(root: Path, virtualenv_lib: Path) -> ModuleTree:
    """EasyBuild-style `GCC/12.3.0` + `Python/3.11.3` (Python has prereq GCC), no uv."""
    mods = _mkdirs(root / "modulefiles")
    gcc_root = _mkdirs(root / "software" / "GCC" / "12.3.0")
    _mkdirs(gcc_root / "bin")
    py_root = root / "software" / "Python" / "3.11.3-GCCcore-12.3.0"
    _python_bin(py_root / "bin", virtualenv_lib)
    _write(mods / "GCC" / "12.3.0.lua", _gcc_lua("12.3.0", gcc_root, 'conflict("GCC")\n'))
    _write(mods / "Python" / "3.11.3.lua", _python_lua("3.11.3", py_root, 'conflict("Python")\nprereq("GCC/12.3.0")\n'))
    return ModuleTree(mods, ["GCC/12.3.0", "Python/3.11.3"], False)


HIERARCHY_PYTHONS = {"GCC/12.3.0": "Python/3.11.3", "GCC/12.2.0": "Python/3.11.1"}
"""The hierarchy cluster's compilers and the Python module each one's folder holds (python3 there: the system's)."""
HIERARCHY_BUNDLE = ("GCC/12.3.0", "SciPy-bundle/2023.07")
"""A module of Python packages behind a compiler in the hierarchy cluster, as EasyBuild makes SciPy-bundle: in the
compiler's folder, loading that compiler's Python itself (depends_on)."""


def build_hierarchy_tree(root: Path, virtualenv_lib: Path, module_packages: Path) -> ModuleTree:
    """An EasyBuild hierarchy as on HPC2N or UPPMAX: Core/ holds the compilers `GCC/12.3.0` and `GCC/12.2.0` (one
    family, so one at a time) and `scipy-stack/2023b`; loading a compiler adds its Compiler/GCC/VERSION folder to
    MODULEPATH, which holds its Python module (HIERARCHY_PYTHONS). `module avail` lists no Python until a compiler
    is loaded; Lmod's `module spider` finds them and says which compiler to load first. GCC/12.3.0's folder also
    holds HIERARCHY_BUNDLE, a module that is not Python's but sits behind the compiler as well.

    scipy-stack, as the Alliance's module of that name does, puts a folder of installed packages
    (`module_packages`, filled by the caller) on PYTHONPATH: pip counts them as installed, uv does not."""
    core = _mkdirs(root / "modules" / "all" / "Core")
    for compiler, python in HIERARCHY_PYTHONS.items():
        version = compiler.split("/")[1]
        _mkdirs(root / "software" / "GCC" / version / "bin")
        tier = _mkdirs(root / "modules" / "all" / "Compiler" / "GCC" / version)
        _write(core / "GCC" / f"{version}.lua",  # EasyBuild's hierarchical naming: what this compiler built
               _gcc_lua(version, root / "software" / "GCC" / version, 'family("compiler")\n',
                        f'prepend_path("MODULEPATH", "{tier}")\n'))
        py_version = python.split("/")[1]
        py_root = root / "software" / "Python" / f"{py_version}-GCCcore-{version}"
        _python_bin(py_root / "bin", virtualenv_lib)
        _write(tier / "Python" / f"{py_version}.lua", _python_lua(py_version, py_root))
        if compiler == HIERARCHY_BUNDLE[0]:
            name, bundle = HIERARCHY_BUNDLE[1].split("/")
            prefix = _mkdirs(root / "software" / name / f"{bundle}-gfbf-2023a")
            _write(tier / name / f"{bundle}.lua", _easybuild_lua(
                name, bundle, "Bundle of Python packages for scientific software (EnvDesk test bed stand-in)", prefix,
                f'depends_on("{python}")\n'))
    _write(
        core / "scipy-stack" / "2023b.lua",
        f"""help([[Packages for Python, installed where PYTHONPATH finds them (as the Alliance's scipy-stack)]])
whatis("Name: scipy-stack")
whatis("Version: 2023b")
prepend_path("PYTHONPATH", "{module_packages}")
""",
    )
    return ModuleTree(core, ["GCC/12.3.0", "Python/3.11.3"], False)


def build_stack_tree(root: Path, virtualenv_lib: Path, wheels_dir: Path) -> ModuleTree:
    """`python/3.11.5` and STACK_MODULE, no uv: the shape of the Alliance's clusters, whose environments install with
    pip (`wheels_dir`: the test bed's wheels, for the stack's folder)."""
    mods = _mkdirs(root / "modulefiles")
    _python_module(mods, root, virtualenv_lib)
    _stack_module(mods, root, wheels_dir)
    return ModuleTree(mods, ["python/3.11.5"], False)
