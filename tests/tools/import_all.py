"""Import every module of the installed `envdesk` package, from outside the source tree.

Run by tests/run-on-wheel.sh right after the wheel is installed: a module the wheel left out,
or one that only imports from the source tree, fails here before any test runs.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from pathlib import Path


def main() -> int:
    tree = Path(__file__).resolve().parents[2]
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != tree]
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import envdesk

    location = Path(envdesk.__file__).resolve()
    if any(tree / folder in location.parents for folder in ("backend", "gui", "resources")):
        print(f"envdesk is imported from the source tree ({location}), not from the installed wheel")
        return 1
    names = ["envdesk"] + [m.name for m in pkgutil.walk_packages(envdesk.__path__, "envdesk.")
                           if not m.name.endswith(".__main__")]  # importing __main__ would start the app
    failed = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # report every broken module at once
            failed.append(f"{name}: {exc.__class__.__name__}: {exc}")
    print(f"imported {len(names) - len(failed)} of {len(names)} modules from {location.parent}")
    for line in failed:
        print("  FAILED", line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
