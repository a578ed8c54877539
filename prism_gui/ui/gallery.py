"""The thumbnail gallery over the catalog, smooth at 100,000 images.

- :class:`GalleryModel`: the ids of the current filter/sort are fetched once (one indexed
  SQLite query); row fields are fetched lazily in pages; thumbnails are decoded off the GUI
  thread (``QThreadPool``) into an LRU cache, with a placeholder until they arrive.
- :class:`TileDelegate`: paints a tile (image, energy, curation status) at a uniform size.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, QRect, QRunnable, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QStyle, QStyledItemDelegate

from prism_gui.ui.common import energy_color, load_tile

PAGE = 256
THUMB_CACHE = 4000
TILE = 72
IdRole = Qt.ItemDataRole.UserRole
RowRole = Qt.ItemDataRole.UserRole + 1
ImageRole = Qt.ItemDataRole.UserRole + 2
ROW_COLUMNS = "id, thumb, path, energy, confidence, status, class_name, class_index, run"


class _Signals(QObject):
    loaded = Signal(int, QImage)


class _ThumbTask(QRunnable):
    def __init__(self, image_id: int, path: Path, size: int, signals: _Signals):
        super().__init__()
        self.image_id, self.path, self.size, self.signals = image_id, path, size, signals
        self.setAutoDelete(True)

    def run(self) -> None:
        self.signals.loaded.emit(self.image_id, load_tile(self.path, self.size))


class GalleryModel(QAbstractListModel):
    count_changed = Signal(int)

    def __init__(self, parent: QObject | None = None, tile: int = TILE):
        super().__init__(parent)
        self.cat = None
        self.root: Path | None = None
        self.tile = tile
        self.ids: list[int] = []
        self.row_of: dict[int, int] = {}
        self.filters: dict = {}
        self.sort = ("id", False)
        self._pages: OrderedDict[int, dict[int, dict]] = OrderedDict()
        self._thumbs: OrderedDict[int, QImage] = OrderedDict()
        self._pending: set[int] = set()
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(2)
        self._signals = _Signals()
        self._signals.loaded.connect(self._on_loaded, Qt.ConnectionType.QueuedConnection)
        self.placeholder = QImage(tile, tile, QImage.Format.Format_RGB32)
        self.placeholder.fill(QColor("#e4e7eb"))
        self.energy_range = (0.0, 2.5)

    # ---- query
    def set_catalog(self, cat) -> None:
        self.cat = cat
        self.root = Path(cat.root) if cat is not None else None
        self._thumbs.clear()
        self.refresh()

    def set_query(self, filters: dict | None = None, sort: str = "id", descending: bool = False) -> None:
        self.filters = dict(filters or {})
        self.sort = (sort, descending)
        self.refresh()

    def refresh(self) -> None:
        self.beginResetModel()
        self._pages.clear()
        if self.cat is None:
            self.ids = []
        else:
            self.ids = self.cat.ids(sort=self.sort[0], descending=self.sort[1], **self.filters)
        self.row_of = {i: r for r, i in enumerate(self.ids)}
        self.endResetModel()
        self.count_changed.emit(len(self.ids))

    def reload_rows(self, ids) -> None:
        """Re-read some rows (after curation) without re-running the query."""
        ids = [i for i in ids if i in self.row_of]
        for i in ids:
            page = self.row_of[i] // PAGE
            if page in self._pages:
                del self._pages[page]
        for i in ids:
            idx = self.index(self.row_of[i])
            self.dataChanged.emit(idx, idx)

    # ---- Qt model
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.ids)

    def row(self, r: int) -> dict:
        page = r // PAGE
        rows = self._pages.get(page)
        if rows is None:
            chunk = self.ids[page * PAGE : (page + 1) * PAGE]
            rows = {x["id"]: dict(x) for x in self.cat.query(columns=ROW_COLUMNS, ids=chunk)}
            self._pages[page] = rows
            while len(self._pages) > 64:
                self._pages.popitem(last=False)
        else:
            self._pages.move_to_end(page)
        return rows.get(self.ids[r], {"id": self.ids[r]})

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self.ids):
            return None
        r = index.row()
        if role == IdRole:
            return self.ids[r]
        row = self.row(r)
        if role == RowRole:
            return row
        if role == Qt.ItemDataRole.DisplayRole:
            return "" if row.get("energy") is None else f"{row['energy']:.2f}"
        if role == ImageRole:
            return self.thumbnail(row)
        if role == Qt.ItemDataRole.ToolTipRole:
            return (f"#{row['id']} {row.get('class_name', '')}: energy {row.get('energy') or 0:.3f}, "
                    f"confidence {row.get('confidence') or 0:.2f}, {row.get('status', '')}")
        return None

    # ---- thumbnails
    def thumbnail(self, row: dict) -> QImage:
        i = row["id"]
        img = self._thumbs.get(i)
        if img is not None:
            self._thumbs.move_to_end(i)
            return img
        if i not in self._pending and row.get("thumb") and self.root is not None:
            self._pending.add(i)
            self.pool.start(_ThumbTask(i, self.root / row["thumb"], self.tile, self._signals))
        return self.placeholder

    def _on_loaded(self, image_id: int, img: QImage) -> None:
        self._pending.discard(image_id)
        if img.isNull():
            return
        self._thumbs[image_id] = img
        while len(self._thumbs) > THUMB_CACHE:
            self._thumbs.popitem(last=False)
        r = self.row_of.get(image_id)
        if r is not None:
            idx = self.index(r)
            self.dataChanged.emit(idx, idx, [ImageRole])

    def wait_for_thumbnails(self, ms: int = 5000) -> None:
        self.pool.waitForDone(ms)


STATUS_COLORS = {"keep": QColor("#2e7d32"), "reject": QColor("#c62828"), "unreviewed": QColor("#c9ced6")}


class TileDelegate(QStyledItemDelegate):
    def __init__(self, model: GalleryModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.font = QFont()
        self.font.setPointSize(8)

    def sizeHint(self, option, index) -> QSize:
        return QSize(self.model.tile + 10, self.model.tile + 26)

    def paint(self, painter: QPainter, option, index) -> None:
        row = index.data(RowRole) or {}
        img = index.data(ImageRole)
        rect = option.rect.adjusted(2, 2, -2, -2)
        painter.save()
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.fillRect(rect, QColor("#cfe3ff") if selected else QColor("#ffffff"))
        status = row.get("status", "unreviewed")
        pen = QPen(STATUS_COLORS.get(status, QColor("#cccccc")), 3 if status != "unreviewed" else 1)
        if selected:
            pen = QPen(QColor("#1565c0"), 3)
        painter.setPen(pen)
        painter.drawRect(rect)
        t = self.model.tile
        target = QRect(rect.x() + (rect.width() - t) // 2, rect.y() + 3, t, t)
        if img is not None:
            painter.drawImage(target, img)
        if status == "reject":
            painter.fillRect(target, QColor(255, 255, 255, 150))
            painter.setPen(QPen(QColor("#c62828"), 2))
            painter.drawLine(target.topLeft(), target.bottomRight())
        e = row.get("energy")
        painter.setFont(self.font)
        text_rect = QRect(rect.x(), target.bottom() + 2, rect.width(), rect.bottom() - target.bottom() - 2)
        lo, hi = self.model.energy_range
        painter.setPen(energy_color(e, lo, hi).darker(130))
        label = f"{e:.2f}" if e is not None else "—"
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignCenter, label)
        painter.restore()
