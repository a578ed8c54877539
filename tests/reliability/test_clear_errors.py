"""Issue 26's unclear or wrongly accepted inputs, through ``prism`` as a user runs it: the newest
paths (the timm student folder, resume files, a local language model) go through the same safe
loaders as teacher checkpoints.  Each answer names the file or key and the fix, with no traceback,
and a pickled payload never runs."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from tests.reliability.test_bad_inputs import Payload
from tests.reliability.test_project_guards import made, project, run  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def student(made, tmp_path_factory):  # noqa: F811
    """A run folder of a one-epoch ``prism distill`` on the made project."""
    import contextlib
    import io

    from prism_gui.cli import main as prism

    d, _ = made
    out = tmp_path_factory.mktemp("student") / "run"
    (d / "distill.json").write_text(json.dumps({"project": str(d / "proj"), "run": "d", "epochs": 1,
                                                 "eval": "digits-test", "out_dir": str(out)}))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert prism(["distill", str(d / "distill.json")]) == 0
    assert (out / "student" / "model.safetensors").is_file() and (out / "checkpoint" / "trainer_state.pt").is_file()
    return out


def evaluate(capsys, tmp_path, folder) -> tuple[int, str]:
    spec = tmp_path / "evaluate.json"
    spec.write_text(json.dumps({"student_dir": str(folder), "eval": "digits-test"}))
    return run(capsys, "evaluate", spec)


def broken_copy(student, tmp_path, name: str, data: bytes):
    folder = tmp_path / "copy"
    shutil.copytree(student, folder)
    (folder / "student" / name).write_bytes(data)
    return folder


def test_the_intact_student_evaluates(student, capsys, tmp_path):
    rc, err = evaluate(capsys, tmp_path, student)
    assert rc == 0, err


@pytest.mark.parametrize("damage", ["truncated", "pickle", "config-not-json", "config-wrong-architecture"])
def test_a_damaged_student_folder_names_the_file_and_the_fix(student, capsys, tmp_path, damage):
    weights = (student / "student" / "model.safetensors").read_bytes()
    marker = tmp_path / "payload-ran"
    if damage == "truncated":
        folder, bad = broken_copy(student, tmp_path, "model.safetensors", weights[: len(weights) // 2]), \
            "model.safetensors"
    elif damage == "pickle":
        import io

        buf = io.BytesIO()
        torch.save({"w": torch.zeros(1), "x": Payload(marker)}, buf)
        folder, bad = broken_copy(student, tmp_path, "model.safetensors", buf.getvalue()), "model.safetensors"
    elif damage == "config-not-json":
        folder, bad = broken_copy(student, tmp_path, "config.json", b'{"architecture": "digits_stud'), "config.json"
    else:
        config = json.loads((student / "student" / "config.json").read_text())
        config["architecture"] = "resnet18"
        folder, bad = broken_copy(student, tmp_path, "config.json", json.dumps(config).encode()), "config.json"
    rc, err = evaluate(capsys, tmp_path, folder)
    assert rc == 1, err
    assert str(folder / "student") in err and "export the student again" in err.lower(), err
    assert bad in err or (damage == "config-wrong-architecture" and "does not match" in err), err
    if damage == "pickle":
        assert "does not load pickles" in err and not marker.exists()


def test_a_resume_file_with_a_pickle_is_refused_and_never_run(student, capsys, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(student, out)
    marker = tmp_path / "payload-ran"
    state = torch.load(out / "checkpoint" / "trainer_state.pt", weights_only=True)
    torch.save({**state, "extra": Payload(marker)}, out / "checkpoint" / "trainer_state.pt")
    spec = {**json.loads((student / "spec.json").read_text()), "out_dir": str(out)}  # the copy's own run
    (out / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "distill.json").write_text(json.dumps(spec))
    rc, err = run(capsys, "distill", tmp_path / "distill.json")
    assert rc == 1 and str(out / "checkpoint" / "trainer_state.pt") in err, err
    assert "posix.system" in err and "does not load pickles" in err and "start the run over" in err, err
    assert not marker.exists()


def test_a_language_model_folder_with_a_pickled_payload_is_refused(capsys, tmp_path):
    lm = tmp_path / "lm"
    lm.mkdir()
    (lm / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    marker = tmp_path / "payload-ran"
    torch.save({"w": torch.zeros(1), "x": Payload(marker)}, lm / "pytorch_model.bin")
    (tmp_path / "prompts.json").write_text(json.dumps({"teacher": "digits", "llm_model": str(lm),
                                                       "output": str(tmp_path / "out.json")}))
    rc, err = run(capsys, "prompts", tmp_path / "prompts.json")
    assert rc == 1 and str(lm / "pytorch_model.bin") in err and "does not load pickles" in err, err
    assert "safetensors" in err and not marker.exists() and not (tmp_path / "out.json").exists()


def test_a_prompt_file_without_a_prompt_for_one_class_names_the_file(project, capsys):  # noqa: F811
    proj, spec = project
    prompts = json.loads((proj / "prompts.json").read_text())
    prompts["prompts"] = [p for p in prompts["prompts"] if p["class_index"] != 3]
    (proj / "prompts.json").write_text(json.dumps(prompts))
    spec.write_text(json.dumps({**json.loads(spec.read_text()), "run": "new"}))
    rc, err = run(capsys, "generate", spec)
    assert rc == 1 and "class 'three' has no active prompt" in err and str(proj / "prompts.json") in err, err
    assert "add a prompt" in err


@pytest.mark.parametrize("command", ["distill", "generate", "evaluate"])
def test_an_unknown_device_names_the_setting_and_the_choices(project, capsys, tmp_path, command):  # noqa: F811
    proj, gen = project
    spec = tmp_path / "spec.json"
    settings = {"distill": {"project": str(proj), "epochs": 1, "eval": ""},
                "generate": json.loads(gen.read_text()), "evaluate": {"eval": "digits-test"}}[command]
    spec.write_text(json.dumps({**settings, "device": "tpu"}))
    rc, err = run(capsys, command, spec)
    assert rc == 1 and "'device' is 'tpu'" in err and "'cuda:N'" in err, err
    assert "xla" not in err.lower()  # not torch's list of internal device types


def test_a_teacher_with_fewer_outputs_than_the_images_classes_is_refused(project, capsys, tmp_path):  # noqa: F811
    proj, _ = project
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 7))
    torch.jit.save(torch.jit.script(model.eval()), str(tmp_path / "seven.pt"))
    (tmp_path / "seven.json").write_text(json.dumps({"input_size": [1, 8, 8], "mean": [0.5], "std": [0.5]}))
    (tmp_path / "distill.json").write_text(json.dumps({"project": str(proj), "teacher": str(tmp_path / "seven.pt"),
                                                       "epochs": 1, "eval": "", "run": "d7"}))
    rc, err = run(capsys, "distill", tmp_path / "distill.json")
    assert rc == 1 and "include class 9 ('nine')" in err and "has 7 outputs" in err, err


def test_a_project_made_only_by_the_command_line_gets_its_full_report(made, student, capsys, tmp_path):  # noqa: F811
    """Issue 27's two report bugs: no project.json (the report refused: "not a PRISM project"), and a
    distillation whose out_dir is outside the project (its result's fields were lost)."""
    import re

    d, _ = made
    assert not (d / "proj" / "project.json").exists() and not str(student).startswith(str(d / "proj"))
    before = sorted(p.name for p in (d / "proj").iterdir())
    rc, err = run(capsys, "report", d / "proj", "--out", tmp_path / "report.html")
    assert rc == 0, err
    html = (tmp_path / "report.html").read_text()
    result = json.loads((student / "result.json").read_text())
    row = re.search(r"<tr><td[^>]*>d</td>(.*?)</tr>", html)
    assert row and f"<td>{result['images']}</td>" in row.group(1), row  # the run's result, read from its out_dir
    assert f"{100 * result['test_accuracy']:.1f}%" in html and "Model size" in html
    assert sorted(p.name for p in (d / "proj").iterdir()) == before  # nothing written into the project
