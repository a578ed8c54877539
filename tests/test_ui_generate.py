"""Generate panel: a small generation job end to end, pause/cancel confirmed by the worker, and
the GUI event loop never blocked for more than 100 ms while a generation runs."""


import pytest

from prism_gui.engine.project.demo_settings import FULL
from prism_gui.ui.testing import StallProbe


@pytest.fixture
def panel(generate_panel):
    generate_panel.show()
    return generate_panel


def test_generation_streams_images_and_plots_energy(qtbot, panel):
    assert "class" in panel.energy_checks and panel.energy_checks["class"].isChecked()
    assert panel.scheduler.count() >= 5
    job = panel.start()
    assert not panel.start_button.isEnabled()
    assert panel.eta.text() == "ETA —"  # not "ETA 0 s" before the first batch is timed
    qtbot.waitUntil(lambda: job.state == "finished", timeout=120000)
    qtbot.waitUntil(panel.start_button.isEnabled, timeout=5000)
    assert panel.strip.count() == 20
    assert panel.progress.value() == 20 and "ETA" in panel.eta.text()
    xs, ys, _ = panel.curves["run-1"]
    assert xs == [10, 20] and all(y > 0 for y in ys)
    qtbot.waitUntil(lambda: panel.curves["run-1"][2] is not None, timeout=2000)
    assert panel.run_name.text() == "run-2"
    with panel.studio.project.catalog() as cat:
        assert cat.count(run="run-1") == 20
        row = cat.get(cat.ids(run="run-1")[3])
    panel.scale.setValue(0)
    panel.fill_from_image(row)
    assert panel.steps.value() == 4 and panel.scale.value() == pytest.approx(FULL["guidance_scale"])
    assert "Settings from image" in panel.note.text()


def test_pause_and_cancel_follow_the_worker(qtbot, panel):
    panel.per_class.setValue(30)
    panel.steps.setValue(10)
    job = panel.start()
    qtbot.waitUntil(lambda: job.last_event is not None and job.last_event.step >= 0, timeout=60000)
    panel.pause_button.click()
    qtbot.waitUntil(lambda: job.state == "paused", timeout=30000)
    assert panel.state.text() == "paused" and panel.pause_button.text() == "Resume"  # the button says what it does
    panel.pause_button.click()
    qtbot.waitUntil(lambda: job.state == "running", timeout=10000)
    assert panel.pause_button.text() == "Pause"
    panel.cancel_button.click()
    assert panel.state.text() == "cancelling…"
    qtbot.waitUntil(lambda: job.state == "cancelled", timeout=30000)
    qtbot.waitUntil(panel.start_button.isEnabled, timeout=5000)
    assert panel.state.text() == "cancelled"
    with panel.studio.project.catalog() as cat:
        assert cat.count() < 300


def test_the_event_loop_never_blocks_over_100ms_while_generating(qtbot, panel):
    panel.batch.setValue(5)
    panel.steps.setValue(8)  # long enough for > 50 timer ticks even when the models are already loaded
    probe = StallProbe()
    probe.start()
    job = panel.start()
    qtbot.waitUntil(lambda: job.state == "finished", timeout=120000)
    probe.stop()
    gaps = probe.gaps
    assert panel.strip.count() == 20
    assert len(gaps) > 50
    assert max(gaps) < 0.100, f"the GUI froze for {1000 * max(gaps):.0f} ms"


def test_memory_options_reach_the_job_and_its_memory_note_is_shown(qtbot, panel):
    assert panel.scheduler.itemText(0) == "default" and panel.auto_batch.isChecked()
    panel.resolution.setValue(8)  # the Digits prior's native size, given explicitly
    panel.scheduler.setCurrentText("default")
    panel.auto_batch.setChecked(False)
    panel.micro.setValue(3)
    s = panel.settings()
    assert (s["resolution"], s["scheduler"], s["auto_batch"], s["guidance_micro_batch"]) == (8, "default", False, 3)
    assert s["guidance_decoder"] == "" and s["offload"] is False
    job = panel.start()
    qtbot.waitUntil(lambda: job.state == "finished", timeout=120000)
    assert panel.note.text().startswith("memory: about") and "x 3 at once" in panel.note.text()
    with panel.studio.project.catalog() as cat:
        run = cat.run_spec("run-1")
    assert run["sampler"]["resolution"] == 8 and run["sampler"]["scheduler"] is None
    assert run["auto_batch"] is False and run["guidance"]["micro_batch"] == 3
    # a new window on the same project reads the settings back
    panel._on_project(panel.studio.project)
    assert panel.resolution.value() == 8 and not panel.auto_batch.isChecked()


def test_a_run_name_that_is_a_path_is_refused_at_start_and_nothing_is_written(qtbot, panel, tmp_path):
    root = panel.studio.project.root
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for name in ("../../escape", "a/b", ".."):
        panel.run_name.setText(name)
        assert panel.start() is None
        assert "run name" in panel.error.text() and name in panel.error.text()
        assert panel.start_button.isEnabled()
    assert not (root / "images").exists() and sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
