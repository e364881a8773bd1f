"""EnvDesk: manage Python environments on HPC clusters from a laptop.

This top-level package holds only the faces over the backend: the console script
(`launch`), `python -m envdesk`, and the command line (`cli`). The desktop app is
`envdesk.gui`, the Qt-free engine `envdesk.backend`, the data files `envdesk.resources`.
"""
from envdesk.backend.about import version

__version__ = version()
