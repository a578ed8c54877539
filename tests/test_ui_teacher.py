"""Teacher panel: the Digits teacher loads as a job; load errors are shown in place."""

from prism_gui.engine.project.project import Project
from prism_gui.ui.common import make_studio
from prism_gui.ui.teacher_panel import TeacherPanel


def make_panel(qtbot, tmp_path):
    studio = make_studio()
    panel = TeacherPanel(studio)
    qtbot.addWidget(panel)
    studio.set_project(Project.create(tmp_path / "proj"))
    return studio, panel


def test_loading_the_digits_teacher_fills_the_card_and_the_project(qtbot, tmp_path):
    studio, panel = make_panel(qtbot, tmp_path)
    assert panel.kind() == "digits" and "zero" in panel.names.toPlainText()
    job = panel.load()
    assert not panel.load_button.isEnabled()
    qtbot.waitUntil(lambda: job.state == "finished", timeout=60000)
    qtbot.waitUntil(panel.load_button.isEnabled, timeout=5000)
    assert panel.info["parameters"].text() == "288,170"
    assert "1 × 8 × 8" in panel.info["input_size"].text()
    assert "mean" in panel.info["normalization"].text()
    assert studio.teacher is not None and studio.class_names()[0] == "zero"
    assert Project.open(tmp_path / "proj").spec["teacher"]["parameters"] == 288170


def test_a_bad_timm_name_shows_a_red_message_in_place(qtbot, tmp_path):
    _studio, panel = make_panel(qtbot, tmp_path)
    panel.set_kind("timm")
    panel.timm_name.setText("resnet_does_not_exist_xyz")
    job = panel.load()
    qtbot.waitUntil(lambda: job.state == "failed", timeout=60000)
    qtbot.waitUntil(lambda: panel.error.isVisible() or panel.error.text() != "", timeout=5000)
    assert "not a timm architecture" in panel.error.text()
    assert panel.load_button.isEnabled()


def test_a_checkpoint_without_architecture_says_what_to_fill_in(qtbot, tmp_path):
    _studio, panel = make_panel(qtbot, tmp_path)
    ck = tmp_path / "model.safetensors"
    ck.write_bytes(b"not really")
    assert panel.accept_file(str(ck))
    assert panel.kind() == "checkpoint" and panel.ckpt.text() == str(ck)
    assert "architecture" in panel.error.text()
    job = panel.load()
    qtbot.waitUntil(lambda: job.state == "failed", timeout=60000)
    assert "architecture" in panel.error.text()
    ts = tmp_path / "model.torchscript"
    ts.write_bytes(b"x")
    panel.accept_file(str(ts))
    assert panel.kind() == "torchscript" and panel.ts_path.text() == str(ts)
    assert not panel.accept_file(str(tmp_path / "notes.docx"))
    assert "not a checkpoint" in panel.error.text()


def test_class_names_import_from_a_text_file(qtbot, tmp_path):
    _studio, panel = make_panel(qtbot, tmp_path)
    f = tmp_path / "names.txt"
    f.write_text("cat\ndog\n")
    panel.import_names(str(f))
    assert panel.class_names() == ["cat", "dog"]
    bad = tmp_path / "dups.txt"
    bad.write_text("cat\ncat\n")
    panel.import_names(str(bad))
    assert "repeats" in panel.error.text()


def test_wrong_number_of_class_names_is_explained(qtbot, tmp_path):
    _studio, panel = make_panel(qtbot, tmp_path)
    panel.names.setPlainText("cat\ndog\n")
    job = panel.load()
    qtbot.waitUntil(lambda: job.state == "failed", timeout=60000)
    assert "10 outputs but 2 class names" in panel.error.text()


def test_the_names_box_goes_with_its_teacher_unless_the_user_edited_it(qtbot, tmp_path):
    _studio, panel = make_panel(qtbot, tmp_path)
    digits = panel.class_names()
    assert digits[0] == "zero"
    # shown names of the Digits teacher: kept for the Digits teacher, dropped for another one
    assert panel.names_for("digits", "digits", None) == digits
    assert panel.names_for("checkpoint", "resnet50", "/m.safetensors") is None
    # names the user typed go with any teacher (and a wrong count is then reported by the load)
    panel.names.setPlainText("\n".join(f"class {i}" for i in range(10)))
    assert panel.names_for("checkpoint", "resnet50", "/m.safetensors") == [f"class {i}" for i in range(10)]
