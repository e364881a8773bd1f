"""What users do with environments, one module per verb; each works on any target.

Every verb takes the Session, a target name and a `Progress` (common.py), and returns a small result:

- list: listing.py — `list_environments` (a target's environments) and `show_environment` (one of them)
- check: check.py — `check_connection`, the connection test step by step
- create: create.py — `create_environment`
- update: update.py — `update_environment` (a snapshot is saved first)
- history/revert: history.py — `list_snapshots` and `revert_environment`
- export: export.py — `export_environment`
- import: importing.py — `plan_import`, `check_availability`, `import_environment`; uv projects: uvimport.py
- clone: clone.py — `clone_environment` (export and import in memory, to another target)
- delete: delete.py — `delete_environment` and `measure_environment` (what a delete would remove)

common.py holds what they share (progress, steps, finding environments, locks); modules.py makes module
lists loadable.
"""
