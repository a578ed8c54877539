"""The Digits-world overview panel: the teacher's card, the prior's card and live samples."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from prism_gui.resources import resource_path


def _card(name: str) -> dict:
    path = resource_path(name, "card.json")
    return json.loads(path.read_text()) if path.exists() else {}


def pil_to_pixmap(img) -> QPixmap:
    img = img.convert("RGB")
    data = img.tobytes("raw", "RGB")
    qimg = QImage(data, img.width, img.height, 3 * img.width, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(qimg.copy())


class WorldPanel(QWidget):
    """Shows what the Digits world is made of and samples its prior on demand."""

    sample_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        teacher, prior = _card("digits_teacher"), _card("digits_prior")
        tbox = QGroupBox("Teacher (knows handwritten digits)")
        tf = QFormLayout(tbox)
        tf.addRow("Architecture", QLabel(teacher.get("architecture", "missing")))
        tf.addRow("Parameters", QLabel(f"{teacher.get('parameters', 0):,}"))
        tf.addRow("Input", QLabel("x".join(map(str, teacher.get("input_size", [])))))
        acc = teacher.get("test_split", {}).get("accuracy")
        tf.addRow("Test accuracy", QLabel(f"{100 * acc:.2f}%" if acc is not None else "n/a"))
        pbox = QGroupBox("Generative prior (trained on printed digits only)")
        pf = QFormLayout(pbox)
        pf.addRow("UNet parameters", QLabel(f"{prior.get('unet_parameters', 0):,}"))
        tr = prior.get("training", {})
        pf.addRow("Training", QLabel(f"{tr.get('steps_done', '?')} steps, {tr.get('total_minutes', '?')} min"))
        q = prior.get("quality", {})
        if q:
            pf.addRow("Follows prompts", QLabel(f"{100 * q['judge_accuracy_on_samples']:.1f}% judged as prompted"))
        cards = QHBoxLayout()
        cards.addWidget(tbox)
        cards.addWidget(pbox)

        self.count = QSpinBox()
        self.count.setRange(1, 50)
        self.count.setValue(8)
        self.count.setToolTip("Images per class to sample from the prior")
        self.button = QPushButton("Sample the prior")
        self.button.setToolTip("Generate 'the digit k' for every class with plain prompts (no guidance)")
        self.button.clicked.connect(lambda: self.sample_requested.emit(self.count.value()))
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.status = QLabel("Press 'Sample the prior' to see what the prior draws.")
        self.status.setWordWrap(True)
        self.image = QLabel()
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setMinimumHeight(300)
        row = QHBoxLayout()
        row.addWidget(QLabel("Images per class"))
        row.addWidget(self.count)
        row.addWidget(self.button)
        row.addWidget(self.progress, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(cards)
        lay.addLayout(row)
        lay.addWidget(self.status)
        lay.addWidget(self.image, 1)

    def set_busy(self, busy: bool) -> None:
        self.button.setEnabled(not busy)

    def show_event(self, ev) -> None:
        if ev.total:
            self.progress.setMaximum(ev.total)
            self.progress.setValue(ev.step)
        if ev.message:
            self.status.setText(f"{ev.stage}: {ev.message}")

    def show_samples(self, image, results: dict) -> None:
        self.image.setPixmap(pil_to_pixmap(image))
        self.status.setText(
            f"The teacher agrees with the prompt on {100 * results['teacher_agrees_with_prompt']:.1f}% of "
            f"{results['images']} samples (plain prompts, no energy guidance); "
            f"mean confidence {results['mean_teacher_confidence']:.2f}."
        )
