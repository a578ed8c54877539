"""Teachers: loading timm models, checkpoints and TorchScript files, and their class names."""
