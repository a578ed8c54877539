"""Settings of the Digits demo, shared by ``prism demo``, the app's autopilot and the headless
run.  Plain data with no heavy imports, so the GUI can read them before torch is loaded."""

from __future__ import annotations

FULL = dict(images_per_class=100, oversample=3, prompts_per_class=20, pilot_per_prompt=2, keep_prompt_fraction=0.7,
            guidance_scale=0.02, guidance_window=(0.5, 1.0), guidance_mode="cheap", epochs=40, steps=30, cfg=3.0,
            scheduler="ddim", student="digits_student", seed=0)
# quick: under a minute here; 60 epochs because 200 images make only 4 steps an epoch
QUICK = {**FULL, "images_per_class": 20, "oversample": 2, "prompts_per_class": 6, "pilot_per_prompt": 1,
         "epochs": 60, "steps": 15}


def demo_settings(quick: bool = False) -> dict:
    return dict(QUICK if quick else FULL)
