"""Dialogs a user meets: adding a cluster, new environment, update, import and copy."""
