"""Export for a cluster: nodes, GPUs per node, CPUs per task, a time limit and a folder; OK
writes the job's spec with launch scripts for torchrun, accelerate and SLURM
(:func:`prism_gui.engine.scale.cluster.export_cluster`).

Tests (and scripts) fill the fields and call :meth:`ClusterDialog.accept`, no modal loop needed;
``paths`` then holds the written files and ``exported`` has been emitted with them."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRegularExpression, Qt, Signal
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from prism_gui.engine.data.layout import RunPaths
from prism_gui.engine.project.app_jobs import generate_spec, plain_class_prompts  # light
from prism_gui.ui.common import error_label, show_error, spin

# SLURM's --time: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS
SLURM_TIME = r"^(\d+-\d{1,2}(:\d{2}){0,2}|\d+(:\d{2}){0,2})$"


class ClusterDialog(QDialog):
    """The launch settings of a multi-node run of one job (``kind``: "generate" or "distill")."""

    exported = Signal(list)  # the written paths

    def __init__(self, kind: str, spec: dict, prompts: str | None, out: str | Path, *, gpus_per_node: int = 1,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.kind, self.spec, self.prompts = kind, dict(spec), prompts
        self.paths: list[Path] = []
        self.setWindowTitle("Export for a cluster")
        self.setObjectName("cluster_dialog")

        what = "generation" if kind == "generate" else "distillation"
        same = "; its images are the same on any number of processes" if kind == "generate" else ""
        intro = QLabel(f"Writes this {what}'s spec and scripts that start it on several nodes (SLURM, torchrun or "
                       f"accelerate). The run is the one Start would run{same}.")
        intro.setWordWrap(True)
        self.nodes = spin(1, 4096, 1, "Machines (SLURM nodes) of the run")
        self.gpus = spin(1, 64, max(1, int(gpus_per_node)), "GPUs of each node: one process per GPU")
        self.cpus = spin(1, 1024, 8, "CPU cores of each node's task (SLURM --cpus-per-task); each process gets "
                                     "its share as OMP_NUM_THREADS")
        self.time_limit = QLineEdit("24:00:00")
        self.time_limit.setValidator(QRegularExpressionValidator(QRegularExpression(SLURM_TIME), self.time_limit))
        self.time_limit.setToolTip("SLURM time limit (--time): HH:MM:SS, D-HH:MM:SS or minutes. A run stopped at "
                                   "its limit resumes where it was when submitted again")
        self.out = QLineEdit(str(out))
        self.out.setToolTip("The folder the spec, prompts.json and the scripts are written to (created if needed)")
        self.browse = QPushButton("…")
        self.browse.setMaximumWidth(28)
        self.browse.setToolTip("Choose the folder")
        self.browse.clicked.connect(self._browse)
        self.world = QLabel("")
        self.world.setStyleSheet("color: #555;")
        for s in (self.nodes, self.gpus):
            s.valueChanged.connect(self._show_world)
        self._show_world()
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.out, 1)
        row.addWidget(self.browse)
        form = QFormLayout()
        form.addRow("Nodes", self.nodes)
        form.addRow("GPUs per node", self.gpus)
        form.addRow("", self.world)
        form.addRow("CPUs per task", self.cpus)
        form.addRow("Time limit", self.time_limit)
        form.addRow("Output folder", row)
        self.error = error_label()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addLayout(form)
        lay.addWidget(self.error)
        lay.addWidget(self.buttons)
        self.setMinimumWidth(460)

    def _show_world(self, *_args) -> None:
        n = self.nodes.value() * self.gpus.value()
        self.world.setText(f"{n} process{'es' if n != 1 else ''} in all")

    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Folder for the cluster files", self.out.text())
        if d:
            self.out.setText(d)

    def export(self) -> list[Path] | None:
        """Write the files; on a problem, say why in the dialog and return None."""
        from prism_gui.engine.scale.cluster import export_cluster

        out = self.out.text().strip()
        time = self.time_limit.text().strip()
        if not out:
            show_error(self.error, "Choose an output folder.")
            return None
        if not self.time_limit.hasAcceptableInput():
            show_error(self.error, f"'{time}' is not a SLURM time limit: use HH:MM:SS, D-HH:MM:SS or minutes.")
            return None
        try:
            paths = export_cluster(self.kind, self.spec, Path(out).expanduser(), nodes=self.nodes.value(),
                                   gpus_per_node=self.gpus.value(), prompts=self.prompts,
                                   cpus_per_task=self.cpus.value(), time=time)
        except (OSError, ValueError) as e:
            show_error(self.error, f"Could not export: {e}")
            return None
        show_error(self.error, "")
        self.paths = paths
        return paths

    def accept(self) -> None:
        if self.export() is None:
            return  # the dialog stays open with the reason
        super().accept()
        self.exported.emit(self.paths)


class ClusterExport:
    """Generate's "Export for a cluster…": the same job as Start, written with launch scripts for
    several nodes (a mixin of :class:`~prism_gui.ui.generate_panel.GeneratePanel`)."""

    def export_for_cluster(self):
        """Open the cluster dialog for the job Start would run (its prompts saved first); returns
        the dialog (OK writes the files), or None when there is no job to export."""
        prepared = self.job_settings()
        if prepared is None:
            return None
        s, plain = prepared
        project = self.studio.project
        try:
            spec = generate_spec(s)
            if plain or self.studio.prompts is None:
                prompts_path = RunPaths.of(project.root, s["run"]).prompts
                prompts_path.parent.mkdir(parents=True, exist_ok=True)
                plain_class_prompts(s, self.studio.teacher, s["class_names"]).save(prompts_path)
            else:
                project.save_prompts(self.studio.prompts)
                prompts_path = project.prompts_path
        except Exception as e:
            show_error(self.error, f"Cannot export for a cluster: {type(e).__name__}: {e}")
            return None
        dialog = ClusterDialog("generate", spec.to_dict(), str(prompts_path), project.root / "cluster" / s["run"],
                               gpus_per_node=max(1, self.processes.value()), parent=self)
        dialog.exported.connect(self._show_export)
        self.cluster_dialog = dialog
        dialog.open()
        return dialog

    def _show_export(self, paths: list) -> None:
        out = paths[0].parent if paths else ""
        self.note.setText(f"Exported for a cluster into {out}.")
        box = QMessageBox(QMessageBox.Icon.Information, "Exported for a cluster",
                          f"Wrote {len(paths)} files into {out}:\n" + "\n".join(f"  {p.name}" for p in paths),
                          parent=self)
        box.setInformativeText("Next: copy the folder to the cluster, edit 'project' in spec.json to the path the "
                               "cluster sees, then sbatch slurm.sbatch (README.txt has the details).")
        box.setDetailedText("\n".join(str(p) for p in paths))
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.setObjectName("cluster_export_message")
        self.cluster_message = box
        box.open()
