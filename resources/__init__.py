"""EnvDesk's data files, shipped as package data ``envdesk.resources``.

- ``presets/*.yaml``: one ready-made cluster profile per well-known cluster family
  (read by :mod:`envdesk.backend.presets`);
- ``icons/*.svg`` and ``icons/envdesk.png``: the app icon and the action icons;
- ``envdesk.desktop``: the freedesktop menu entry.

Read them with ``importlib.resources.files("envdesk.resources")``, never by path, so
that they are found in an editable install, a wheel and a zip alike.
"""



def preset_ids() -> list[str]:
    """The IDs of the cluster presets shipped here (each file is named by its ID), without reading them:
    what `envdesk --help` lists, cheaply."""
    from importlib import resources  # here, not at import: every command line imports this module (~10 ms)
    folder = resources.files(__name__) / "presets"
    return sorted(entry.name[:-len(".yaml")] for entry in folder.iterdir() if entry.name.endswith(".yaml"))
