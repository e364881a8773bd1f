"""conda match specs as conda reads them. The referee is rattler's MatchSpec (py-rattler, prefix.dev's
implementation of conda's package model, in lenient mode as conda reads environment files): conda's own reader
cannot be installed here, and EnvDesk's reading must agree with a conda implementation, not with itself.

The entries are shaped like those of public environment.yml files: conda-forge's docs and feedstocks, `conda env
export` (with builds, `--no-builds`, `--from-history`, whose ranges come in conda's bracket form), PyTorch's and
NVIDIA's instructions (channel::name), and hand-written files (`python 3.10.*`, `numpy>=1.24,<2`).
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import rattler  # py-rattler, in the test extra
from rattler.exceptions import InvalidMatchSpecError
import yaml

from envdesk.backend import spec as specs
from envdesk.backend.operations.importing import install_lines
from envdesk.backend.recipes import conda_spec

ENTRIES = [
    "python", "python=3.11", "python=3.11.8=hab00c5b_0_cpython", "python>=3.9,<3.12", "python 3.10.*",
    "python=3.10.*", "python 3.9.*|3.10.*", "python=3.12.*=*_cpython", "python 3.11", "python==3.11.5",
    "python[version='>=3.9,<3.12']", "python[version='3.11.*']", "python[version='3.11']", "numpy[version='1.26.4']",
    "numpy", "numpy=1.26", "numpy=1.26.4", "numpy==1.26.4", "numpy=1.26.4=py311h64a7726_0", "numpy>=1.24",
    "numpy>=1.24,<2", "numpy >=1.24", "numpy 1.26.4 py311h64a7726_0", "numpy 1.26.4", "numpy 1.26.*",
    "numpy!=1.25.0", "numpy<2.0.0a0", "numpy=1.26.4|1.26.3", "numpy=1.26.4=*_0",
    "numpy[version='>=1.26',build=py311*]", "numpy[version='>=1.24,<2']", "conda-forge::numpy=1.26.4",
    "conda-forge::numpy==1.26.4", "conda-forge/linux-64::numpy==1.26.4=py311h64a7726_0",
    "pytorch::pytorch=2.1.0=py3.11_cuda11.8_cudnn8.7.0_0", "pytorch::pytorch", "nvidia::cuda-toolkit=11.8",
    "pytorch-cuda=11.8", "cudatoolkit=11.8.*", "scikit-learn>=1.3", "pandas~=2.1.0", "r-base=4.3",
    "_libgcc_mutex=0.1=conda_forge", "_openmp_mutex=4.5=2_gnu", "libblas=*=*mkl", "blas=*=openblas",
    "openssl>=3.0.12,<4.0a0", "ca-certificates=2024.2.2=hbcca054_0", "python-dateutil=2.8.2=pyhd8ed1ab_0",
    "pip=24.0", "pip", "setuptools<70", "jupyterlab>=4", "ld_impl_linux-64=2.40=h41732ed_0",
]
NOT_SPECS = [">=1", "numpy==", "numpy =", "numpy||1", "numpy,scipy", "numpy==1.0,", "numpy[version=1.0",
             "numpy @ 1.0", "http://example.org/numpy-1.0.tar.bz2", "numpy; echo hi", "numpy$(id)"]
CANDIDATES = ["1.24.0", "1.25.0", "1.26", "1.26.3", "1.26.4", "1.26.4.1", "2.0.0a0", "2.0.1", "3.9.18", "3.10.13",
              "3.11", "3.11.0", "3.11.2", "3.11.5", "3.11.8", "3.12.1", "24.0", "11.8.0", "0.1", "4.5", "1.26.4rc1",
              "2.0.0rc1", "1.99"]


def conda_reads(entry: str):
    return rattler.MatchSpec(entry, strict=False)


def read(entry: str) -> specs.EnvSpec:
    return specs.from_conda_yaml(yaml.safe_dump({"name": "t", "dependencies": [entry]}))


def same_ask(first, second) -> bool:
    """Two match specs ask for the same: name, channel, build, and every candidate version alike."""
    def matched(spec) -> list[bool]:
        if spec.version is None:
            return [True] * len(CANDIDATES)
        allowed = rattler.VersionSpec(str(spec.version), strict=False)
        return [allowed.matches(rattler.Version(v)) for v in CANDIDATES]

    def channel(spec) -> str | None:
        return spec.channel.name if spec.channel else None
    return (first.name.normalized, channel(first), first.build, matched(first)) == (
        second.name.normalized, channel(second), second.build, matched(second))


@pytest.mark.parametrize("entry", ENTRIES)
def test_a_match_spec_conda_reads_is_kept_and_named_as_conda_names_it(entry):
    conda = conda_reads(entry)
    spec = read(entry)
    assert not spec.refused, spec.refused
    assert specs.conda_entry_name(entry) == conda.name.normalized


@pytest.mark.parametrize("entry", NOT_SPECS)
def test_what_conda_does_not_read_as_a_match_spec_is_refused(entry):
    with pytest.raises(InvalidMatchSpecError):
        conda_reads(entry)
    assert read(entry).refused and not read(entry).conda_requirements


@pytest.mark.parametrize("entry", ENTRIES)
def test_an_entry_is_a_pin_exactly_when_conda_reads_one_version(entry):
    """'numpy=1.26.4' is any 1.26.4.* to conda, 'python=3.11' any 3.11: a pin is one exact version."""
    conda = conda_reads(entry)
    version = str(conda.version) if conda.version is not None else ""
    exact = version.startswith("==") and "*" not in version and not any(c in version[2:] for c in ",|")
    exact = exact and "*" not in (conda.build or "")
    pins = read(entry).conda_pins
    assert bool(pins) == exact, (pins, version, conda.build)
    if pins:
        pin = pins[0]
        assert (pin.name, pin.version, pin.build) == (conda.name.normalized, version[2:], conda.build)


@pytest.mark.parametrize("entry", ENTRIES)
def test_what_conda_is_given_asks_what_the_file_asks(entry):
    """An import hands conda the entry's meaning unchanged: channel, version and build (T: a pin's
    `conda-forge::` was dropped, `numpy==1.26.4` became `numpy=1.26.4`)."""
    _, given = install_lines(read(entry), conda=True)
    assert len(given) == 1 and same_ask(conda_reads(given[0]), conda_reads(entry)), given


@pytest.mark.parametrize("entry", [e for e in ENTRIES if "[" not in e or "version=" in e])
def test_a_history_export_drops_only_the_build(entry):
    """conda env export --from-history's portable form: the same version ask, without a build."""
    conda = conda_reads(entry)
    stripped = conda_reads(specs.conda_without_build(entry))
    channel = f"{conda.channel.name}::" if conda.channel else ""
    without = rattler.MatchSpec(channel + conda.name.normalized + (f" {conda.version}" if conda.version else ""),
                                strict=False)
    assert stripped.build is None and same_ask(stripped, without), (entry, specs.conda_without_build(entry))


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.split("::")[-1].startswith("python") and
                                   specs.conda_entry_name(e) == "python"])
def test_the_python_a_venv_is_made_with_is_the_one_conda_would_allow(entry):
    """Where there is no conda, a file asking for one Python (or one family) becomes a venv of that Python: every
    version the venv may have (that version, or its x.y.z within x.y) is one conda allows, and a range is left to
    conda."""
    conda = conda_reads(entry)
    asked = read(entry).python
    if conda.version is None:  # any Python: the venv's own
        assert asked is None
        return
    if asked is None:
        version = str(conda.version)
        assert any(mark in version for mark in "<>!,|~"), version
        return
    allowed = rattler.VersionSpec(str(conda.version), strict=False)
    for candidate in CANDIDATES:
        if candidate == asked or candidate.startswith(asked + "."):
            assert allowed.matches(rattler.Version(candidate)), (asked, candidate, str(conda.version))


@pytest.mark.parametrize("requirement", ["numpy==1.26.4", "numpy>=1.24", "numpy>=1.24,<2", "numpy!=1.25.0",
                                         "numpy", "numpy~=1.26.0", "numpy<2.0.0a0"])
def test_a_pip_requirement_given_to_conda_allows_what_pip_allows(requirement):
    """packaging is pip's referee, rattler conda's."""
    from packaging.requirements import Requirement
    pip_allows = Requirement(requirement).specifier
    conda = conda_reads(conda_spec(requirement))
    allowed = rattler.VersionSpec(str(conda.version), strict=False) if conda.version else None
    for candidate in CANDIDATES:
        assert pip_allows.contains(candidate, prereleases=True) == (
            allowed is None or allowed.matches(rattler.Version(candidate))), (requirement, conda_spec(requirement),
                                                                              candidate)


@pytest.mark.parametrize("entry", ["numpy[channel='https://alice:s3cr3t@conda.example.org/private']",
                                   "scipy[url='https://evil.example.com/scipy-1.0-0.tar.bz2']",
                                   "numpy[version='1.26.4',channel=conda-forge]"])
def test_a_bracket_naming_more_than_version_and_build_is_refused(entry):
    """R18: a channel or URL inside the brackets escaped the checks channels and URLs get elsewhere (a
    credential on conda's command line, a download from outside): conda reads them (the referee), EnvDesk
    refuses them with a way to write them."""
    assert conda_reads(entry).name.normalized in ("numpy", "scipy")
    spec = read(entry)
    assert spec.refused and not spec.conda_requirements and "channel::name" in spec.refused[0].reason


def test_a_from_history_file_in_condas_bracket_form_is_planned_without_refusals(tmp_path):
    """conda env export --from-history writes ranges as `numpy[version='>=1.26']`: such a file imports (it was
    refused as 'not a conda package specification')."""
    exported = tmp_path / "environment.yml"
    exported.write_text("name: hist\nchannels:\n  - conda-forge\ndependencies:\n  - python=3.11\n"
                        "  - numpy[version='>=1.26']\n  - scipy\n")
    result = subprocess.run([sys.executable, "-m", "envdesk", "--config-dir", str(tmp_path / "cfg"), "env", "import",
                             "local", str(exported), "--dry-run", "--json"], capture_output=True, text=True,
                            timeout=120)
    plan = json.loads(result.stdout)
    assert not plan["refused"] and "numpy[version='>=1.26']" in plan["conda"], plan
