"""Python modules behind a compiler in a real Lmod hierarchy (user trial T20, M2), on the test bed's `hier` cluster
(tests/testbed/software.py build_hierarchy_tree: `Python/3.11.3` only once `GCC/12.3.0` is loaded, as EasyBuild's
hierarchical naming makes it on HPC2N and UPPMAX).

The referees are Lmod itself, asked by hand as the cluster's user: `module spider` (which modules exist and what
to load before each), `module load` and $LOADEDMODULES, and the Python those modules put on PATH, against the
`home` of the environment's pyvenv.cfg, which the Python that made it wrote; and pip freeze in the environment.
"""
from __future__ import annotations

import re

from lmod_fixtures import lmod_spider, python_after
from testbed.software import HIERARCHY_PYTHONS


def test_the_test_bed_hides_python_behind_the_compiler_as_lmod_says(hier):
    """The bed itself, by Lmod: no Python without a compiler, spider names the compiler, loading both works."""
    avail = hier.run_as_user("module -t avail 2>&1").stdout
    assert "GCC/12.3.0" in avail and not re.search(r"(?im)^python", avail), avail
    alone = hier.run_as_user("module load Python/3.11.3", check=False)
    assert alone.returncode != 0 and "module spider Python/3.11.3" in alone.stderr, alone.stderr
    assert lmod_spider(hier) == {python: [compiler] for compiler, python in HIERARCHY_PYTHONS.items()}
    loaded, folder = python_after(hier, ["GCC/12.3.0", "Python/3.11.3"])
    assert loaded == "GCC/12.3.0:Python/3.11.3" and "Python/3.11.3-GCCcore-12.3.0" in folder
