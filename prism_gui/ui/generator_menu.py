"""The Generate tab's generator menu: what is usable on this machine (the built-in prior, the
user's folders and files, the diffusers models in the Hugging Face cache; scanned off the GUI
thread by ``engine/generation/local_models.py``), with what each one is."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, QThreadPool, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QPushButton

from prism_gui.engine.generation.local_models import GeneratorEntry, local_generators  # light
from prism_gui.ui.common import ERROR_STYLE, WARNING_COLOR

EXTRA_GENERATORS = "generators/extra"  # the settings key of the folders and files the user added
CHECKPOINT_FILTER = "Stable Diffusion checkpoints (*.safetensors *.ckpt *.pt *.pth);;All files (*)"


class _GeneratorScan(QObject):
    """Carries the list of local generators from the thread pool to the panel."""

    found = Signal(int, list, str)  # scan number, entries, error


class GeneratorMenu:
    """The generator menu's methods (a mixin of :class:`~prism_gui.ui.generate_panel.GeneratePanel`)."""

    def _add_generator_rows(self, form: QFormLayout) -> None:
        self._generator_entries: dict[str, GeneratorEntry] = {}
        self._extra: list[str] = []  # the added folders and files when the panel has no app settings
        self._scans = 0
        self._pending_scan: _GeneratorScan | None = None
        self.generator = QComboBox()
        self.generator.setEditable(True)
        self.generator.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.generator.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.generator.setMinimumContentsLength(14)
        self.generator.addItem("digits", "digits")
        self.generator.setToolTip("The generators found on this computer: the built-in Digits prior, the folders and "
                                  "checkpoints you added, and the diffusers models in the Hugging Face cache. You can "
                                  "also type a folder, a checkpoint file or a Hugging Face id in the local cache.")
        self.generator.currentIndexChanged.connect(self._on_generator_chosen)
        self.generator.editTextChanged.connect(self._show_generator_info)
        self.generator_info = QLabel("")
        self.generator_info.setWordWrap(True)
        self.generator_info.setTextFormat(Qt.TextFormat.PlainText)
        self.generator_info.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.generator_info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.generator_info.hide()
        folder = QPushButton("Folder…")
        folder.setToolTip("Add a local diffusers folder (with model_index.json, unet/, text_encoder/, …); it stays "
                          "in this list next time")
        folder.clicked.connect(self._browse_generator)
        file = QPushButton("File…")
        file.setToolTip("Add a single-file Stable Diffusion checkpoint (.safetensors or .ckpt, as A1111 and "
                        "Civitai share them); it stays in this list next time")
        file.clicked.connect(self._browse_checkpoint)
        add = QHBoxLayout()
        add.addWidget(QLabel("Add:"))
        add.addWidget(folder)
        add.addWidget(file)
        add.addStretch(1)
        form.addRow("Generator", self.generator)
        form.addRow("", self.generator_info)
        form.addRow("", add)

    def extra_generators(self) -> list[str]:
        """The folders and checkpoint files the user added (remembered in the app settings)."""
        if self.app_settings is None:
            return list(self._extra)
        return self.app_settings.list(EXTRA_GENERATORS)

    def add_generator(self, path: str) -> None:
        """Remember a folder or checkpoint file, choose it and list it from now on."""
        extra = [path] + [p for p in self.extra_generators() if p != path]
        if self.app_settings is None:
            self._extra = extra
        else:
            self.app_settings.set(EXTRA_GENERATORS, extra)
        self.set_generator(path)
        self.scan_generators()

    def scan_generators(self) -> None:
        """List the local generators in the thread pool (the cache scan reads files); the menu
        fills when it is done."""
        self._scans += 1
        scan, number, extra = _GeneratorScan(), self._scans, self.extra_generators()
        scan.found.connect(self._show_generators, Qt.ConnectionType.QueuedConnection)
        self._pending_scan = scan  # alive until its result arrives

        def work():
            try:
                entries, error = local_generators(extra), ""
            except Exception as e:  # a scan that fails leaves the menu as it was and says why
                entries, error = [], f"Could not list the local generators: {type(e).__name__}: {e}"
            scan.found.emit(number, entries, error)

        QThreadPool.globalInstance().start(work)

    @property
    def scanning_generators(self) -> bool:
        return self._pending_scan is not None

    def _show_generators(self, number: int, entries: list, error: str) -> None:
        if number != self._scans:
            return  # a newer scan is under way
        self._pending_scan = None
        if error:
            self.generator_info.setStyleSheet(ERROR_STYLE)
            self.generator_info.setText(error)
            self.generator_info.show()
            return
        current = self.generator_source()
        self.generator.blockSignals(True)
        self.generator.clear()
        self._generator_entries = {e.source: e for e in entries}
        for i, e in enumerate(entries):
            self.generator.addItem(e.summary() + (" · ⚠ not usable" if e.problem else ""), e.source)
            tip = f"{e.summary()}\n{e.source}" + (f"\n\nNot usable: {e.problem}" if e.problem else "")
            self.generator.setItemData(i, tip, Qt.ItemDataRole.ToolTipRole)
            if e.problem:
                self.generator.setItemData(i, QColor(WARNING_COLOR), Qt.ItemDataRole.ForegroundRole)
        view = self.generator.view()
        view.setMinimumWidth(view.sizeHintForColumn(0) + 24)  # the popup shows whole lines
        self.generator.blockSignals(False)
        self.set_generator(current)

    def set_generator(self, source: str) -> None:
        """Choose ``source`` (what load_generator takes): its menu entry if listed, else as typed."""
        i = self.generator.findData(source)
        if i >= 0:
            self.generator.setCurrentIndex(i)
            self.generator.setEditText(self.generator.itemText(i))
        else:
            self.generator.setEditText(source)
        self._show_generator_info()
        self.generator.lineEdit().setCursorPosition(0)  # the start of a long name, not its end

    def generator_source(self) -> str:
        """The chosen generator as load_generator takes it: an entry's source, or the typed text."""
        text = self.generator.currentText().strip()
        i = self.generator.findText(text, Qt.MatchFlag.MatchExactly)
        if i >= 0 and self.generator.itemData(i):
            return str(self.generator.itemData(i))
        return text or "digits"

    def _on_generator_chosen(self, _index: int) -> None:
        self._show_generator_info()
        self.generator.lineEdit().setCursorPosition(0)

    def _show_generator_info(self, *_args) -> None:
        """Under the menu: what the chosen entry is (the menu line is often cut), or why it is not usable."""
        entry = self._generator_entries.get(self.generator_source())
        info = self.generator_info
        info.setToolTip(entry.source if entry is not None else "")
        if entry is None:
            info.hide()
        elif entry.problem:
            info.setStyleSheet(f"color: {WARNING_COLOR};")
            info.setText(f"⚠ Not usable: {entry.problem}")
            info.show()
        else:
            where = {"folder": "folder ", "file": "file "}.get(entry.where, "")
            width = max(160, self.generator.width()) - info.fontMetrics().horizontalAdvance(where)
            path = info.fontMetrics().elidedText(entry.source, Qt.TextElideMode.ElideMiddle, width)
            info.setStyleSheet("color: #555;")
            traits = " · ".join(t.replace(" ", "\u00a0") for t in entry.traits())  # '512 px' stays on one line
            info.setText(traits + (f"\n{where}{path}" if where else ""))
            info.show()
        # wrap only what does not fit: a wrapping label reserves room for lines it does not draw
        info.setWordWrap(info.fontMetrics().horizontalAdvance(info.text()) > max(160, self.generator.width()))

    def _browse_generator(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Diffusers folder")
        if path:
            self.add_generator(path)

    def _browse_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Single-file checkpoint", "", CHECKPOINT_FILTER)
        if path:
            self.add_generator(path)
