"""No file a user opens runs code: checkpoints that carry a pickled payload (here: one that would
create a marker file when unpickled) are refused with a clear error, and the payload never runs,
whether the file is given as a teacher checkpoint (engine and CLI) or as a Stable Diffusion file."""

import os
import pickle
import subprocess
import sys

import pytest
import torch

from prism_gui.engine.teachers.errors import TeacherLoadError
from prism_gui.engine.teachers.spec import TeacherSpec


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):  # what unpickling would call: it must never happen
        return (os.system, (f"touch '{self.marker}'",))


def payload_files(tmp_path, marker):
    torch_zip = tmp_path / "evil.pth"
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}, "extra": Payload(marker)}, torch_zip)
    legacy = tmp_path / "evil_legacy.pt"
    torch.save({"model": Payload(marker)}, legacy, _use_new_zipfile_serialization=False)
    raw = tmp_path / "evil_raw.ckpt"
    raw.write_bytes(pickle.dumps({"state_dict": Payload(marker)}))
    return [torch_zip, legacy, raw]


def test_a_pickled_payload_in_a_teacher_checkpoint_never_runs(tmp_path):
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Payload(control)))
    assert control.exists()  # the payload is real: unpickled the unsafe way, it runs
    marker = tmp_path / "ran"
    for f in payload_files(tmp_path, marker):
        with pytest.raises(TeacherLoadError) as e:
            TeacherSpec.from_value({"teacher": "resnet18", "checkpoint": str(f)}).load()
        assert f.name in str(e.value)
        assert not marker.exists(), f"{f.name}: the payload ran"


def test_a_pickled_payload_in_a_stable_diffusion_file_never_runs(tmp_path):
    from prism_gui.engine.generation.load import GeneratorLoadError, load_generator

    marker = tmp_path / "ran"
    for f in payload_files(tmp_path, marker):
        with pytest.raises((GeneratorLoadError, ValueError, OSError)) as e:
            load_generator(str(f))
        assert f.name in str(e.value)
        assert not marker.exists(), f"{f.name}: the payload ran"


def test_the_cli_refuses_a_payload_checkpoint_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    f = payload_files(tmp_path, marker)[0]
    spec = tmp_path / "e.toml"
    spec.write_text(f'teacher = "resnet18"\ncheckpoint = "{f}"\neval = ""\n')
    r = subprocess.run([sys.executable, "-m", "prism_gui.cli", "evaluate", str(spec)], capture_output=True,
                       text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 1 and "evil.pth" in r.stderr and "Traceback" not in r.stderr
    assert not marker.exists()
