"""EnvDesk's desktop app (PySide6) over the Qt-free backend."""
