"""EnvDesk: manage Python environments on HPC clusters from a laptop.

This top-level package holds only the faces over the backend: the console script
(`launch`), `python -m envdesk`, and the command line (`cli`). The desktop app is
`envdesk.gui`, the Qt-free engine `envdesk.backend`, the data files `envdesk.resources`.
"""


def __getattr__(name: str) -> str:
    """`envdesk.__version__` (backend/about.py's, which the package's metadata carries too)."""
    if name == "__version__":
        from envdesk.backend.about import version
        return version()
    raise AttributeError(name)
