"""Where a noisy sample stands, and what the model's output says about its clean image.

Energy guidance (EDA) scores the teacher on x̂0, the clean image predicted from the current
sample, moves x̂0 downhill and hands the scheduler the model output that predicts the moved
x̂0.  Both directions depend on two things, and this module is the one place that knows them:

- **the scheduler's space.**  Alpha-space schedulers (DDIM, DDPM, PNDM, DPM++, UniPC, LCM)
  keep ``x = α·x0 + σ·ε`` with ``α² + σ² = 1`` and feed ``x`` to the model as it is.
  Sigma-space schedulers (Euler, Euler ancestral, LMS: ``init_noise_sigma > 1``) keep
  ``x = x0 + s·ε`` and feed the model ``x / √(s² + 1)``.  Both come down to one form: the
  model input is ``x_in = c_in·x = α·x0 + σ·ε`` with ``α² + σ² = 1`` (:class:`NoiseLevel`).
- **the prediction type** (``epsilon``, ``v_prediction``, ``sample``), with ``v = α·ε − σ·x0``.

The noise level is read from the scheduler's own quantities at the timestep being taken
(``alphas_cumprod[t]``, or ``sigmas[index_for_timestep(t)]`` for schedulers that keep their own
sigmas, Karras sigmas included), never from the order of earlier scheduler calls.  Schedulers
this table does not know are refused for guidance with a message that names the ones it does.
"""

from __future__ import annotations

import dataclasses

import torch

# scheduler class -> how it parametrizes the sample
ALPHA_T = "alpha: alphas_cumprod[t]"  # x = √ᾱ_t x0 + √(1-ᾱ_t) ε, ᾱ indexed by the timestep
ALPHA_SIGMAS = "alpha: scheduler sigmas"  # same space, but the step uses its own (e.g. Karras) sigmas
SIGMA = "sigma"  # x = x0 + s ε, model input x / √(s²+1)
SCHEDULER_KINDS = {
    "DDIMScheduler": ALPHA_T,
    "DDPMScheduler": ALPHA_T,
    "PNDMScheduler": ALPHA_T,
    "LCMScheduler": ALPHA_T,
    "DPMSolverMultistepScheduler": ALPHA_SIGMAS,
    "UniPCMultistepScheduler": ALPHA_SIGMAS,
    "DEISMultistepScheduler": ALPHA_SIGMAS,
    "EulerDiscreteScheduler": SIGMA,
    "EulerAncestralDiscreteScheduler": SIGMA,
    "LMSDiscreteScheduler": SIGMA,
}
# prediction types each scheduler itself accepts (diffusers raises for the others)
_ALL = ("epsilon", "v_prediction", "sample")
PREDICTION_TYPES = {
    "DDIMScheduler": _ALL,
    "DDPMScheduler": _ALL,
    "PNDMScheduler": ("epsilon", "v_prediction"),
    "LCMScheduler": _ALL,
    "DPMSolverMultistepScheduler": _ALL,
    "UniPCMultistepScheduler": _ALL,
    "DEISMultistepScheduler": _ALL,
    "EulerDiscreteScheduler": _ALL,
    "EulerAncestralDiscreteScheduler": ("epsilon", "v_prediction"),
    "LMSDiscreteScheduler": _ALL,
}


class UnsupportedScheduler(ValueError):
    """A scheduler or prediction type that energy guidance cannot handle exactly."""


@dataclasses.dataclass(frozen=True)
class NoiseLevel:
    """The model input is ``c_in * x = alpha * x0 + sigma * eps``, with ``alpha² + sigma² = 1``."""

    alpha: float
    sigma: float
    c_in: float = 1.0


def check_guidable(sched) -> str:
    """The scheduler's kind (one of :data:`SCHEDULER_KINDS`' values), or a clear error."""
    name = type(sched).__name__
    kind = SCHEDULER_KINDS.get(name)
    if kind is None:
        known = ", ".join(sorted(SCHEDULER_KINDS))
        raise UnsupportedScheduler(
            f"energy guidance does not know how {name} parametrizes its samples, so it cannot guide it "
            f"correctly: choose one of {known} (or set the guidance scale to 0)")
    ptype = sched.config.get("prediction_type", "epsilon")
    if ptype not in PREDICTION_TYPES[name]:
        raise UnsupportedScheduler(
            f"{name} does not support prediction type '{ptype}' (it takes {', '.join(PREDICTION_TYPES[name])}): "
            "choose another scheduler for this generator")
    if name == "DDPMScheduler" and str(sched.config.get("variance_type", "")).startswith("learned"):
        raise UnsupportedScheduler("DDPM with a learned variance (the model predicts two outputs) is not supported "
                                   "by energy guidance: choose 'ddim' or set the guidance scale to 0")
    return kind


def _step_index(sched, t) -> int:
    """The schedule position of timestep ``t``, as the scheduler itself finds it on a first call."""
    if hasattr(sched, "index_for_timestep"):
        return int(sched.index_for_timestep(t))
    hits = (sched.timesteps == t).nonzero()
    if len(hits) == 0:
        raise UnsupportedScheduler(f"timestep {float(t)} is not in the schedule of {type(sched).__name__}")
    return int(hits[0])


def noise_level(sched, t) -> NoiseLevel:
    """The noise level of a sample at timestep ``t`` (the value the model is called with).

    Computed in float32 tensors, as the schedulers compute their own coefficients: the guided
    trajectory amplifies differences in the last bit (docs/SAMPLING.md, "Sensitivity")."""
    kind = check_guidable(sched)
    if kind == ALPHA_T:
        a = sched.alphas_cumprod[int(t)].float()
        return NoiseLevel(float(a.sqrt()), float((1 - a).sqrt()), 1.0)
    s = sched.sigmas[_step_index(sched, t)].float()
    if kind == ALPHA_SIGMAS:  # VE sigma s = σ/α: α = 1/√(1+s²), σ = s·α
        alpha = 1 / (s**2 + 1) ** 0.5
        return NoiseLevel(float(alpha), float(s * alpha), 1.0)
    c_in = 1 / (s**2 + 1) ** 0.5
    return NoiseLevel(float(c_in), float(s * c_in), float(c_in))


def predicted_x0(output: torch.Tensor, x: torch.Tensor, level: NoiseLevel, prediction_type: str) -> torch.Tensor:
    """x̂0 from the model's output on sample ``x`` (unscaled, as the scheduler holds it)."""
    x_in = level.c_in * x
    if prediction_type == "epsilon":
        return (x_in - level.sigma * output) / level.alpha
    if prediction_type == "v_prediction":
        return level.alpha * x_in - level.sigma * output
    if prediction_type == "sample":
        return output
    raise UnsupportedScheduler(f"unknown prediction type '{prediction_type}': use epsilon, v_prediction or sample")


def output_for_x0(x0: torch.Tensor, x: torch.Tensor, level: NoiseLevel, prediction_type: str) -> torch.Tensor:
    """The model output that, on sample ``x``, predicts ``x0`` (inverse of :func:`predicted_x0`)."""
    x_in = level.c_in * x
    if prediction_type == "epsilon":
        return (x_in - level.alpha * x0) / level.sigma
    if prediction_type == "v_prediction":
        return (level.alpha * x_in - x0) / level.sigma
    if prediction_type == "sample":
        return x0
    raise UnsupportedScheduler(f"unknown prediction type '{prediction_type}': use epsilon, v_prediction or sample")
