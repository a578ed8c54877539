"""The catalog's metrics: the curves a job logs (a distillation per step, a generation per stored
batch), read back for the panels, the report and a CSV export."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from prism_gui.engine.data.errors import CatalogError
from prism_gui.engine.data.files import atomic_write_text


class MetricsStore:
    """Metrics methods of :class:`~prism_gui.engine.data.catalog.Catalog` (a mixin: it uses the
    catalog's connection, lock and write transaction)."""

    def log_metrics(self, run: str, step: int, values: dict[str, float], epoch: float | None = None) -> None:
        now = time.time()
        with self._writing():
            self._conn.executemany("INSERT INTO metrics (run, step, epoch, key, value, time) VALUES (?,?,?,?,?,?)",
                                   [(run, step, epoch, k, float(v), now) for k, v in values.items()])

    def replace_metrics(self, run: str, lines: list[dict]) -> None:
        """Make ``run``'s metrics exactly ``lines`` (``metrics.jsonl`` records: step, epoch,
        time and values), in one transaction: a resumed distillation's curves lose the steps
        it will redo."""
        rows = [(run, int(r["step"]), r.get("epoch"), k, float(v), r.get("time", 0.0))
                for r in lines for k, v in r.items() if k not in ("step", "epoch", "time")
                and isinstance(v, (int, float))]
        with self._writing():
            self._conn.execute("DELETE FROM metrics WHERE run=?", (run,))
            self._conn.executemany("INSERT INTO metrics (run, step, epoch, key, value, time) VALUES (?,?,?,?,?,?)",
                                   rows)

    def metrics(self, run: str, key: str) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            rows = self._conn.execute("SELECT step, value FROM metrics WHERE run=? AND key=? ORDER BY step",
                                      (run, key)).fetchall()
        return np.array([r[0] for r in rows]), np.array([r[1] for r in rows])

    def metric_runs(self) -> list[str]:
        """The runs that logged metrics, in the order they were made."""
        with self._lock:
            logged = {r[0] for r in self._conn.execute("SELECT DISTINCT run FROM metrics")}
        return [r["id"] for r in self.runs() if r["id"] in logged]

    def metrics_table(self, run: str) -> tuple[list[str], list[list]]:
        """``run``'s logged metrics as one table: a row per (step, epoch), a column per metric
        (``step, epoch, time`` first; empty where a step did not log that metric)."""
        with self._lock:
            rows = self._conn.execute("SELECT step, epoch, key, value, time FROM metrics WHERE run=? "
                                      "ORDER BY step, rowid", (run,)).fetchall()
        keys = list(dict.fromkeys(r["key"] for r in rows))
        table: dict[tuple, dict] = {}
        for r in rows:
            line = table.setdefault((r["step"], r["epoch"]), {"time": r["time"]})
            line[r["key"]] = r["value"]
        header = ["step", "epoch", "time", *keys]
        return header, [[step, epoch, line["time"], *(line.get(k) for k in keys)]
                        for (step, epoch), line in table.items()]

    def export_metrics_csv(self, run: str, dest: str | Path) -> int:
        """Write ``run``'s metrics (:meth:`metrics_table`) to a CSV file; returns its rows."""
        import csv
        import io

        known = [r["id"] for r in self.runs()]
        if run not in known:
            raise CatalogError(f"'{self.root}' has no run '{run}'; its runs are {', '.join(known) or 'none'}")
        header, rows = self.metrics_table(run)
        if not rows:
            raise CatalogError(f"run '{run}' logged no metrics yet (a generation logs them per stored batch, a "
                               "distillation per step): run it first, or choose another run")
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(header)
        w.writerows([["" if v is None else v for v in r] for r in rows])
        atomic_write_text(Path(dest), buf.getvalue())
        return len(rows)
