"""EnvDesk's test bed: fake HPC clusters on loopback, made of real parts.

Real OpenSSH sshd per cluster, real Unix users, real Lmod module trees, real
pip/uv/virtualenv environments, real PAM (pam_oath TOTP, pam_unix password).
Use through the `testbed` fixture in tests/conftest.py; see bed.py.
"""

from .bed import TestBed, TestBedUnavailable, cleanup_stale_beds, missing_prerequisites
from .cluster import FakeCluster
from .projects import ProjectInfo, add_commit, clone_project, make_project  # noqa: F401  (re-exported)
from .totp import hotp, totp
from .wheels import WHEELS, WheelSpec, build_wheel

__all__ = [
    "TestBed", "TestBedUnavailable", "FakeCluster", "cleanup_stale_beds",
    "missing_prerequisites", "hotp", "totp", "WHEELS", "WheelSpec", "build_wheel",
]
