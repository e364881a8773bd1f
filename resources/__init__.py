"""EnvDesk's data files, shipped as package data ``envdesk.resources``.

- ``presets/*.yaml``: one ready-made cluster profile per well-known cluster family
  (read by :mod:`envdesk.backend.presets`);
- ``icons/*.svg`` and ``icons/envdesk.png``: the app icon and the action icons;
- ``envdesk.desktop``: the freedesktop menu entry.

Read them with ``importlib.resources.files("envdesk.resources")``, never by path, so
that they are found in an editable install, a wheel and a zip alike.
"""
