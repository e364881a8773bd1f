"""What the probe learns from each fake cluster in one command: Pythons, modules, uv, space and quotas."""
from __future__ import annotations

import pytest

from envdesk.backend.capabilities import choose_python
from envdesk.backend.probe import probe
from envdesk.backend.errors import InvalidInput

# STAND-IN for the Digital Research Alliance's `diskusage_report` (it cannot exist here); the
# layout follows the report that tool prints on the Alliance's clusters.
DISKUSAGE_REPORT = """#!/bin/sh
echo "                             Description                Space           # of files"
echo "                   /home (user $USER)             11G/  50G            48K/ 500K"
echo "                /scratch (user $USER)            5.2G/  20T          12K/1000K"
"""


@pytest.fixture
def quota_report(testbed):
    alpha = testbed.clusters["alpha"]
    alpha.run_as_user("mkdir -p ~/tools && cat > ~/tools/diskusage_report && chmod 755 ~/tools/diskusage_report && "
                      "echo 'export PATH=\"$HOME/tools:$PATH\"' > ~/.bash_profile", input=DISKUSAGE_REPORT)
    yield
    alpha.run_as_user("rm -rf ~/.bash_profile ~/tools")


def test_probe_of_each_cluster(testbed, session, quota_report):
    alpha = probe(session.target("alpha"))
    assert [m.module for m in alpha.python_modules] == ["python/3.11.5"]
    assert alpha.uv() == ("uv", ["uv/0.13"]) and alpha.kinds()[0] == "uv"
    assert alpha.free_bytes is not None and alpha.free_bytes > 1024
    assert any("/home (user" in line and "500K" in line for line in alpha.quota)
    beta = probe(session.target("beta"))
    assert [m.module for m in beta.python_modules] == ["Python/3.11.3"]
    assert beta.uv() is None and beta.kinds() == ["venv", "virtualenv"] and beta.quota == []
    assert choose_python(beta, "3.11.5", "venv").modules == ("Python/3.11.3",)
    assert "is not offered here" in choose_python(beta, "3.11.5", "venv").note  # another 3.11 than the one asked
    assert choose_python(beta, "3.11", "venv").note == ""  # any 3.11 was asked for (a user trial was told otherwise)
    with pytest.raises(InvalidInput) as info:
        choose_python(beta, "3.12", "venv")
    assert "available: 3.11" in info.value.message
