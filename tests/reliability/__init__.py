

def add_blank_images(cat, n: int, run: str = "r") -> None:
    """``n`` blank 8x8 images of class 'zero' in ``run``: a catalog for the fault tests."""
    import numpy as np

    for i in range(n):
        cat.add_image(run, i, np.zeros((8, 8, 3), np.uint8), class_index=0, class_name="zero", prompt="p", seed=i,
                      generator="g", settings={})
