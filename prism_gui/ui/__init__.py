"""The Qt layer of PRISM Studio: it presents and controls the engine, never re-implements it."""
