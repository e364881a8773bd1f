"""paramiko, loaded without the task runner `invoke` it imports only to evaluate `Match exec` in ssh configs.

EnvDesk never evaluates `Match exec` (ssh_config.py drops those blocks before paramiko reads them), and
importing invoke costs about as much as paramiko itself (it pulls in asyncio, unittest.mock, yaml...): half
of a whole `envdesk env list CLUSTER` spent on the local side. Modules that use paramiko import it from here:

    from .ssh_lib import paramiko
"""
from __future__ import annotations

import sys

if "paramiko" not in sys.modules and "invoke" not in sys.modules:
    sys.modules["invoke"] = None  # type: ignore[assignment]  # `import invoke` raises ImportError meanwhile
    try:
        import paramiko
    finally:
        if sys.modules.get("invoke", 0) is None:
            del sys.modules["invoke"]  # anyone else may still import the real invoke
else:
    import paramiko

__all__ = ["paramiko"]
