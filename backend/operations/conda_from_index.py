"""A conda file's packages in pip's words, for a target without conda: a venv holds those its package index has."""
from __future__ import annotations

import re

from .. import spec as specs

CONDA_TO_PYPI = {
    "pytorch": "torch",
    "py-opencv": "opencv-python",
    "matplotlib-base": "matplotlib",
    "msgpack-python": "msgpack",
    "pytables": "tables",
}
"""conda-forge's names for projects PyPI calls otherwise (the feedstock's name is not the project's). Every other
conda package is looked for on the index under its own name: a library conda builds (libzlib, cuda-toolkit) is
not there, which the target's installer says."""


SAME_ON_PYPI = frozenset((
    "numpy", "scipy", "pandas", "matplotlib", "scikit-learn", "scikit-image", "seaborn", "sympy", "statsmodels",
    "h5py", "netcdf4", "xarray", "dask", "numba", "cython", "jupyter", "jupyterlab", "notebook", "ipykernel",
    "ipython", "ipywidgets", "requests", "pyyaml", "tqdm", "pillow", "networkx", "biopython", "torch",
    "torchvision", "torchaudio", "tensorflow", "keras", "jax", "transformers", "pytest", "setuptools", "wheel",
    "pip", "click", "rich", "pydantic", "sqlalchemy", "plotly", "bokeh", "numexpr", "bottleneck", "pyarrow",
    "polars", "joblib", "lightgbm", "xgboost", "opencv-python", "tables", "msgpack", "astropy", "mpi4py",
    "pyproj", "shapely", "geopandas", "rasterio", "zarr", "snakemake", "nltk", "spacy", "tensorboard",
))
"""Projects conda-forge packages under PyPI's own name: a conda file's bare name (no version) is looked for on
the index only if it is one of them (R19: conda's `ffmpeg` and `graphviz` are the programs, PyPI's projects of
those names are not, and with no version nothing tells them apart). A name with a version is judged by the
index's installer (a program's versions are not its namesake's)."""


def unsure_on_pypi(line: str) -> bool:
    """Whether pip's `line` (pip_form's) names a project only, outside SAME_ON_PYPI: PyPI's project of that name may
    not be conda's package."""
    return not re.search(r"[=<>!~]", line) and line not in SAME_ON_PYPI


def pip_form(entry: str) -> str | None:
    """The requirement pip is given for the conda match spec `entry`: the project PyPI names it by, at the same
    versions, without conda's build and channel ('numpy=1.26.4=py311h64a7726_0' -> 'numpy==1.26.4', 'numpy=1.26'
    -> 'numpy==1.26.*', as conda reads it, 'pytorch::pytorch' -> 'torch'). None where pip has no such words: a
    name PyPI cannot have (conda's own '_libgcc_mutex', '__osx'), or versions conda writes in its own way only
    ('1.2|1.4')."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    bare = specs.conda_without_build(entry).rpartition("::")[2]
    name = specs.conda_entry_name(bare)
    if not re.fullmatch(r"[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?", name):
        return None
    versions = bare[len(name):].strip().replace(" ", "")
    if versions.startswith("=") and not versions.startswith("=="):  # conda's '=1.26': any 1.26.*
        versions = f"=={versions[1:]}" + ("" if versions.endswith("*") else ".*")
    try:
        SpecifierSet(versions)
    except InvalidSpecifier:
        return None
    return f"{CONDA_TO_PYPI.get(name, name)}{versions}"


_OTHER_SYSTEMS = (("macOS", re.compile(r"__osx|libcxx|libcxxabi")),
                  ("Windows", re.compile(r"__win|ucrt|vc|vc14_runtime|vs20(?:08|15|17|19|22)_runtime|m2w64-.+|"
                                         r"msys2-.+|m2-.+")))
"""conda packages only macOS or Windows has (their C++ or C runtimes, conda's virtual package of the system): a
file that lists one was exported there, and its builds are that system's."""


def other_system(entry: str) -> str | None:
    """The system (macOS, Windows) the conda package `entry` names is made for only; None for any other."""
    name = specs.conda_entry_name(entry)
    return next((system for system, names in _OTHER_SYSTEMS if names.fullmatch(name)), None)
