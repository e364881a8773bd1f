"""Render the main window and each dialog to PNGs, against the real test bed (run as root, under Xvfb).

    xvfb-run -s '-screen 0 1600x1000x24' python tests/tools/screenshots.py OUTDIR [--dark] [--scale 2]
        [--size 1024x640]

Used for the README's screenshots and to look at the app as a user would. It drives the same
code paths as the GUI tests: real sshd clusters, real environments.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("outdir")
    parser.add_argument("--dark", action="store_true")
    parser.add_argument("--scale", default="1")
    parser.add_argument("--size", default="1360x860", help="the main window's size, WIDTHxHEIGHT (a small laptop "
                        "screen less its panel: 1024x640)")
    args = parser.parse_args()
    os.environ["QT_SCALE_FACTOR"] = args.scale
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="envdesk-shots-"))
    os.environ["HOME"] = str(home)

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from testbed import TestBed
    from envdesk_fixtures import make_config
    from envdesk.backend.hostkeys import ServerIdentity
    from envdesk.backend.prompts import SecretRequest
    from envdesk.gui.dialogs.cluster_dialog import ClusterDialog
    from envdesk.gui.dialogs.import_dialog import ImportDialog
    from envdesk.gui.dialogs.new_env_dialog import NewEnvironmentDialog
    from envdesk.gui.dialogs.update_dialog import UpdateDialog
    from envdesk.gui.main_window import MainWindow
    from envdesk.gui.dialogs.trust_dialog import TrustDialog
    from envdesk.gui.prompter import LoginDialog
    from envdesk.gui.resources import icon
    import paramiko

    app = QApplication(sys.argv[:1])
    app.setWindowIcon(icon("envdesk"))
    suffix = (("-dark" if args.dark else "") + (f"-x{args.scale}" if args.scale != "1" else "")
              + (f"-{args.size}" if args.size != "1360x860" else ""))

    def wait(condition, seconds=120.0):
        end = time.monotonic() + seconds
        while not condition():
            app.processEvents()
            time.sleep(0.02)
            if time.monotonic() > end:
                raise TimeoutError("the app did not get there in time")
        for _ in range(20):
            app.processEvents()
            time.sleep(0.01)

    def shoot(widget, name):
        widget.show()
        wait(lambda: True)
        path = out / f"{name}{suffix}.png"
        widget.grab().save(str(path))
        print(path)

    bed = TestBed.start()
    try:
        bed.make_sample_envs()
        paths = make_config(home / "config", bed, ["alpha", "beta"])
        window = MainWindow(paths)
        window.set_appearance("dark" if args.dark else "light")
        window.resize(*(int(side) for side in args.size.split("x")))
        window.show()
        window.cluster_view.setCurrentIndex(window.controller.targets.index(1))
        wait(lambda: "alpha" in window.controller.refreshed)
        window.controller.refresh_all()
        wait(lambda: {"beta", "local"} <= window.controller.refreshed)
        for row in range(window.env_proxy.rowCount()):
            if window.env_proxy.index(row, 0).data() == "plainvenv":
                window.env_table.setCurrentIndex(window.env_proxy.index(row, 0))
        window.details.setCurrentIndex(1)
        export = window.export_to("alpha", window.current_environment(), home / "plainvenv.envdesk.yaml", "envdesk")
        wait(lambda: export.done.is_set())
        shoot(window, "main-window")
        window.details.setCurrentIndex(3)
        shoot(window, "main-window-use-it")

        # a cluster with a long name (T25: its title widened the window past a small screen), and a filter matching
        # nothing (said under the table)
        import dataclasses
        from envdesk.backend.config import ClusterStore
        long_name = "narval-cluster-with-a-really-long-descriptive-name-for-the-lab"
        store = ClusterStore(paths)
        store.add(dataclasses.replace(store.get("alpha"), name=long_name))
        window.controller.reload_targets()
        window.cluster_view.setCurrentIndex(window.cluster_view.index_of(long_name))
        wait(lambda: long_name in window.controller.refreshed)
        window.env_filter.setText("no-such-environment")
        shoot(window, "main-window-long-cluster-name")
        window.env_filter.clear()
        window.cluster_view.setCurrentIndex(window.cluster_view.index_of("alpha"))
        for row in range(window.env_proxy.rowCount()):
            if window.env_proxy.index(row, 0).data() == "plainvenv":
                window.env_table.setCurrentIndex(window.env_proxy.index(row, 0))

        cluster = ClusterDialog(window.controller, parent=window)
        cluster.preset.setCurrentIndex(1)
        cluster.user.setText("jsmith")
        shoot(cluster, "add-cluster")
        cluster.advanced.box.setChecked(True)
        shoot(cluster, "add-cluster-advanced")

        key = paramiko.PKey.from_path(str(bed.client_key))
        shoot(TrustDialog("fir", ServerIdentity("fir.alliancecan.ca", 22, key), window), "trust-server")
        shoot(LoginDialog(SecretRequest("fir", "code", "Passcode or option (1-1): ",
                                        instructions="Duo two-factor login for jsmith"), window), "login-code")

        new_env = NewEnvironmentDialog(window.controller, "alpha", parent=window)
        wait(lambda: new_env.caps is not None)
        new_env.name.setText("analysis")
        new_env.packages.setPlainText("numpy\npandas>=2\nnot a spec!")
        shoot(new_env, "new-environment")

        update = UpdateDialog(window.controller, "alpha", window.current_environment(), parent=window)
        update.add.setText("tinygamma")
        shoot(update, "update-packages")

        copy = ImportDialog.for_copy(window.controller, "alpha", window.current_environment(), parent=window)
        wait(lambda: copy.plan is not None)
        shoot(copy, "copy-to-cluster")
        copy.close()
        # beta has an environment of that name, made there since it was listed: said under the name, and no Build
        name = window.current_environment().name
        bed.clusters["beta"].run_as_user(f"python3 -m venv --without-pip ~/venvs/{name}")
        taken = ImportDialog.for_copy(window.controller, "alpha", window.current_environment(), parent=window)
        wait(lambda: taken.plan is not None and "already exists" in taken.name_error.text())
        shoot(taken, "copy-to-cluster-taken")
        taken.close()
        bed.clusters["beta"].run_as_user(f"rm -r ~/venvs/{name}")

        # the window's own question (its words and the folder's real size), answered Cancel once shot
        asked: list[str] = []

        def shoot_the_question() -> None:
            box = QApplication.activeModalWidget()
            if not isinstance(box, QMessageBox):
                QTimer.singleShot(50, shoot_the_question)
                return
            shoot(box, "delete-confirm")
            asked.append(box.text())
            box.reject()
        QTimer.singleShot(50, shoot_the_question)
        window.delete_environment()
        wait(lambda: bool(asked))

        # issue 12's views: disk use, health, kernels, comparing two environments
        window.measure_disk()
        wait(lambda: "alpha" in window.controller.disk_reports)
        window.check_health()
        wait(lambda: getattr(window, "health_dialog", None) is not None)
        shoot(window.health_dialog, "health-check")
        window.health_dialog.close()
        shoot(window, "main-window-disk-health")
        from envdesk.gui.dialogs.disk_dialog import DiskDialog
        shoot(DiskDialog(window.controller, "alpha", parent=window), "disk")
        window.show_kernels()
        wait(lambda: not window.kernels_dialog.status.text().startswith("Reading"))
        shoot(window.kernels_dialog, "jupyter-kernels")
        from envdesk.gui.dialogs.diff_dialog import DiffDialog
        shoot(DiffDialog(window.controller, "alpha", window.current_environment(), parent=window), "compare")
        from envdesk.gui.dialogs.local_dialog import LocalSettingsDialog
        shoot(LocalSettingsDialog(window.controller, parent=window), "this-computer-settings")
        window.close()
    finally:
        bed.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
