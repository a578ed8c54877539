"""Data: the image catalog and image conversions."""
