# PyInstaller hook for diffusers (the project's own; pyinstaller-hooks-contrib has none that works
# with diffusers 0.42):
# - diffusers checks the installed metadata of its dependencies when it is imported
#   (dependency_versions_check), which import analysis cannot see: copy diffusers' metadata and
#   its dependency table's (the spec copies the rest of the dependencies' metadata);
# - its pipelines and models import lazily (_LazyModule): collect every submodule that imports
#   with the installed packages (Flax/ONNX-only ones are left out);
# - keep its .py sources, as the contrib hooks do for transformers and torch: torch.jit.script
#   and inspect need them.
from PyInstaller.utils.hooks import collect_submodules, copy_metadata

SKIP = ("flax", "onnx", "_tf", "tensorflow", "jax", "experimental", "commands")

datas = copy_metadata("diffusers")
hiddenimports = collect_submodules("diffusers", filter=lambda name: not any(s in name for s in SKIP))
module_collection_mode = {"diffusers": "pyz+py"}
