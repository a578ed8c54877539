# PyInstaller hook for torchvision, replacing pyinstaller-hooks-contrib's: torchvision 0.29 loads
# its operators from `_C_stable.so` and `image_stable.so` by path (torch.ops.load_library), which
# import analysis cannot see and the contrib hook (written for `_C`) does not collect. Without
# them `import torchvision` fails with "operator torchvision::nms does not exist" (timm imports it).
from PyInstaller.utils.hooks import collect_dynamic_libs

binaries = collect_dynamic_libs("torchvision", search_patterns=["*.so", "*.pyd", "*.dylib"])  # no "lib" prefix
module_collection_mode = "pyz+py"
