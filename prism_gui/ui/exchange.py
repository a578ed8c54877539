"""File ▸ Import images, Export dataset, Export run metrics: the project's doors to other tools.

Each is a small dialog over an engine job (:mod:`prism_gui.engine.project.importer`,
:mod:`prism_gui.engine.data.export`, ``Catalog.export_metrics_csv``); the work runs in the
studio's worker like every other job.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from prism_gui.ui.common import Studio, error_label, show_error


def _teacher(studio: Studio, project):
    """The loaded teacher, else the project's (loaded in the job)."""
    if studio.teacher is not None:
        return studio.teacher
    from prism_gui.engine.teachers.spec import TeacherSpec

    return TeacherSpec.from_value(project.teacher_value()).load()


def _path_row(edit: QLineEdit, browse) -> QHBoxLayout:
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    b = QPushButton("Browse…")
    b.clicked.connect(browse)
    row.addWidget(b)
    return row


class ImportDialog(QDialog):
    """A folder of images made elsewhere, into the project as a run."""

    def __init__(self, studio: Studio, parent: QWidget | None = None):
        super().__init__(parent)
        self.studio = studio
        self.job = None
        self.setWindowTitle("Import images")
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("a folder of images; class subfolders (names or WordNet ids) if it has them")
        self.run = QLineEdit()
        self.run.setPlaceholderText("automatic: import-<folder name>")
        self.mapping = QLineEdit()
        self.mapping.setPlaceholderText("optional: a folder -> class mapping file (JSON or CSV)")
        form = QFormLayout()
        form.addRow("Folder", _path_row(self.folder, self._browse_folder))
        form.addRow("Run", self.run)
        form.addRow("Class mapping", _path_row(self.mapping, self._browse_mapping))
        note = QLabel("Classes come from the subfolders (class names, WordNet ids, or the mapping file); without class "
                      "subfolders the teacher labels each image (marked as such). Prompt, seed and settings are read "
                      "from Stable Diffusion web-UI and ComfyUI PNG metadata. Every image is scored by the teacher. "
                      "Importing a folder again adds only new images; unreadable files are listed and skipped.")
        note.setWordWrap(True)
        note.setStyleSheet("color: #555;")
        self.error = error_label()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Import")
        buttons.accepted.connect(self.start)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(note)
        lay.addWidget(self.error)
        lay.addWidget(buttons)
        self.resize(640, self.sizeHint().height())

    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "A folder of images")
        if path:
            self.folder.setText(path)

    def _browse_mapping(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "A class mapping file", "", "Mapping (*.json *.csv)")
        if path:
            self.mapping.setText(path)

    def start(self):
        project = self.studio.project
        if project is None:
            show_error(self.error, "Open or create a project first (File menu).")
            return None
        folder = self.folder.text().strip()
        if not folder or not Path(folder).expanduser().is_dir():
            show_error(self.error, f"'{folder}' is not a folder: choose the folder that holds the images."
                       if folder else "Choose the folder that holds the images.")
            return None
        show_error(self.error, "")
        run, mapping = self.run.text().strip() or None, self.mapping.text().strip() or None
        studio, root = self.studio, project.root

        def job(token):
            from prism_gui.engine.project.importer import import_job

            yield from import_job(root, folder, _teacher(studio, project), run=run, mapping=mapping,
                                     cancel=token)

        self.job = studio.submit(f"Import '{Path(folder).name}'", job)
        self.job.finished.connect(self._finished)
        self.job.failed.connect(lambda msg, _d: QMessageBox.warning(self.parentWidget(), "Import failed", msg))
        self.accept()
        return self.job

    def _finished(self, ev) -> None:
        res = ev.data["result"]
        self.studio.catalog_changed.emit()
        text = (f"{res['added']} of {res['files']} image files imported into run '{res['run']}'"
                f" ({res['duplicates']} were already in the project).")
        if res["teacher_labelled"]:
            text += f"\n{res['teacher_labelled']} had no class folder: the teacher labelled them (marked as such)."
        if res["unreadable"]:
            shown = "\n".join(f"{f}: {why}" for f, why in res["unreadable"][:20])
            more = f"\n… and {len(res['unreadable']) - 20} more" if len(res["unreadable"]) > 20 else ""
            text += f"\n\nSkipped {len(res['unreadable'])} unreadable file(s):\n{shown}{more}"
        self.summary = text
        parent = self.parentWidget()
        if parent is not None and parent.isVisible():
            QMessageBox.information(parent, "Import finished", text)


def export_dataset_dialog(studio: Studio, parent: QWidget, dest: str | None = None):
    """Export the project's kept and unreviewed images as a Hugging Face imagefolder dataset."""
    project = studio.project
    if project is None:
        return None
    if not dest:
        dest = QFileDialog.getExistingDirectory(parent, "Export the dataset into a folder (new or empty)")
    if not dest:
        return None
    root, names = project.root, project.class_names() or None

    def job(token):
        from prism_gui.engine.data.export import export_dataset_job

        yield from export_dataset_job(root, dest, class_names=names, cancel=token)

    j = studio.submit("Export dataset", job)
    j.failed.connect(lambda msg, _d: QMessageBox.warning(parent, "Export failed", msg))
    j.finished.connect(lambda ev: parent.statusBar().showMessage(
        f"Exported {ev.data['images']} images to {ev.data['dest']}: datasets.load_dataset(\"imagefolder\", "
        f"data_dir=...) loads it", 15000) if hasattr(parent, "statusBar") else None)
    return j


def export_metrics_dialog(studio: Studio, parent: QWidget, run: str | None = None, dest: str | None = None):
    """Write one run's metrics (loss, lr, accuracy, agreement; images/s, energy) as CSV."""
    from prism_gui.engine.data.catalog import CatalogError

    project = studio.project
    if project is None:
        return None
    with project.catalog() as cat:
        runs = cat.metric_runs()
    if not runs:
        QMessageBox.information(parent, "Export run metrics", "No run of this project has logged metrics yet: "
                                "generate or distill first.")
        return None
    if run is None:
        run, ok = QInputDialog.getItem(parent, "Export run metrics", "Run:", runs, len(runs) - 1, False)
        if not ok:
            return None
    if not dest:
        dest, _ = QFileDialog.getSaveFileName(parent, "Save the run's metrics", str(Path.home() / f"{run}.csv"),
                                              "CSV (*.csv)")
    if not dest:
        return None
    try:
        with project.catalog() as cat:
            n = cat.export_metrics_csv(run, dest)
    except (CatalogError, OSError) as e:
        QMessageBox.warning(parent, "Export run metrics", str(e))
        return None
    if hasattr(parent, "statusBar"):
        parent.statusBar().showMessage(f"Wrote {n} rows of '{run}' to {dest}", 10000)
    return Path(dest)
