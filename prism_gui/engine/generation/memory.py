"""How much memory a generation job needs, told before it samples.

The guidance step is what fills a GPU: back-propagating the teacher's energy keeps every
activation of the decoder (and, in the exact mode, of the UNet) for each image of a guidance
micro-batch.  This module measures those activations without computing anything: it runs one
guided step of one image on PyTorch's ``meta`` device (shapes only, no memory, no arithmetic),
with the models' own modules re-parametrized by meta tensors, and adds up the tensors autograd
saves for the backward pass (``saved_tensors_hooks``).  What checkpointing recomputes is not
saved, so the estimate follows every memory option.  The model weights are counted from their
parameters and buffers.

Not counted: the transient buffers of a forward pass (freed as it goes), the CUDA context and the
allocator's slack (allow 10-20% above the estimate).  A batch that does not fit anyway is halved
and retried by the job (``GenerateSpec.auto_batch``), with the same images.
"""

from __future__ import annotations

import dataclasses

import torch

MiB = 2**20


@dataclasses.dataclass
class MemoryEstimate:
    weights: int  # bytes of every model the job holds on the device
    guidance_per_image: int  # activations kept for the guidance gradient, per image
    micro_batch: int  # images whose activations are kept at once
    batch_size: int

    @property
    def peak(self) -> int:
        return self.weights + self.guidance_per_image * self.micro_batch

    def describe(self) -> str:
        if not self.guidance_per_image:
            return f"about {self.peak / MiB:,.0f} MiB (model weights; no guidance gradient)"
        return (f"about {self.peak / MiB:,.0f} MiB: weights {self.weights / MiB:,.0f} MiB + guidance "
                f"{self.guidance_per_image / MiB:,.0f} MiB per image x {self.micro_batch} at once")

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "peak": self.peak}


def model_bytes(*modules) -> int:
    seen, total = set(), 0
    for m in modules:
        if m is None:
            continue
        for t in [*m.parameters(), *m.buffers()]:
            if id(t) not in seen:
                seen.add(id(t))
                total += t.numel() * t.element_size()
    return total


class _Graph(torch.nn.Module):
    """The modules a guided step differentiates through, under one root for ``functional_call``."""

    def __init__(self, decoder, teacher_model, unet=None):
        super().__init__()
        self.decoder = decoder
        self.teacher = teacher_model
        self.unet = unet

    def forward(self, run):
        return run()


def guidance_bytes_per_image(comp, teacher, sampler, guidance) -> int:
    """Bytes autograd keeps for one image's guidance gradient, measured on the meta device."""
    if not guidance.on:
        return 0
    offloaded = comp.offload_device
    if offloaded is None:
        return _guidance_bytes(comp, teacher, sampler, guidance)
    comp.disable_offload()  # offload hooks would move the meta weights; put them back afterwards
    try:
        return _guidance_bytes(comp, teacher, sampler, guidance)
    finally:
        comp.enable_offload(offloaded)


def _guidance_bytes(comp, teacher, sampler, guidance) -> int:
    from prism_gui.engine.generation.decoders import decode_with, decoder_checkpointing, guidance_vae
    from prism_gui.engine.generation.energies import compute_energies
    from prism_gui.engine.generation.families import family
    from prism_gui.engine.generation.sampler import latent_size

    vae = guidance_vae(comp, guidance.decoder)
    exact = guidance.mode == "exact"
    root = _Graph(vae, teacher.model, comp.unet if exact else None)
    meta = {name: torch.empty_like(t, device="meta")
            for name, t in [*root.named_parameters(remove_duplicate=False), *root.named_buffers()]}
    size = latent_size(comp, sampler.resolution)
    shape = (1, comp.unet.config.in_channels, size, size)
    cond = None
    if exact:
        c = family(comp).encode(comp, [""], None, sampler.cfg, size * comp.vae_scale)
        cond = dataclasses.replace(c, embeds=c.embeds.to("meta"), added={k: v.to("meta") for k, v in c.added.items()},
                                   timestep_cond=None if c.timestep_cond is None else c.timestep_cond.to("meta"))

    def step():
        tgt = torch.zeros(1, dtype=torch.long, device="meta")
        x = torch.zeros(shape, device="meta", dtype=comp.dtype, requires_grad=True)
        if exact:
            inp = torch.cat([x, x]) if cond.doubled else x
            t = torch.tensor(500, device="meta")
            x = comp.unet(inp, t, cond.embeds, **cond.unet_kwargs()).sample[:1]
        energy, _, _ = compute_energies(teacher, decode_with(vae, x), tgt, guidance.energy, all_terms=False)
        return energy

    def measure(checkpointing: bool, blocks=()) -> tuple[int, int]:
        """(bytes saved, the most saved inside one of ``blocks``)."""
        saved: dict[int, int] = {}
        keep: list[torch.Tensor] = []  # ids stay unique while the step's tensors live
        per_block: dict[int, int] = {}
        active: list[int] = []

        def pack(t):
            # weights (and constants) are leaves without a gradient: counted with the models, not here
            if (t.requires_grad or t.grad_fn is not None) and id(t) not in saved:
                saved[id(t)] = t.numel() * t.element_size()
                keep.append(t)
                if active:
                    per_block[active[-1]] = per_block.get(active[-1], 0) + saved[id(t)]
            return t

        def enter(i):
            def hook(*_):
                active.append(i)
            return hook

        def leave(*_):
            active.pop()

        hooks = [h for i, blk in enumerate(blocks)
                 for h in (blk.register_forward_pre_hook(enter(i)), blk.register_forward_hook(leave))]
        try:
            with torch.enable_grad(), decoder_checkpointing(vae, checkpointing), \
                    torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                torch.func.functional_call(root, meta, (step,), strict=False)
        finally:
            for h in hooks:
                h.remove()
        return sum(saved.values()), max(per_block.values(), default=0)

    if not guidance.checkpoint_decoder:
        return measure(False)[0]
    # checkpointed blocks keep only their inputs; in the backward pass one block at a time is
    # recomputed, so the largest block's activations come back on top of what stays saved
    dec = getattr(vae, "decoder", None)
    blocks = [b for b in (getattr(dec, "mid_block", None), *getattr(dec, "up_blocks", ())) if b is not None]
    _, largest_block = measure(False, blocks)
    kept, _ = measure(True)
    return kept + largest_block


def estimate(comp, teacher, sampler, guidance, batch_size: int, *, offload: bool = False) -> MemoryEstimate:
    """The memory of a generation job on its device, for these settings (with ``offload``, the
    generator's models take turns on the device: the largest one counts)."""
    from prism_gui.engine.generation.decoders import guidance_vae

    tiny = guidance_vae(comp, guidance.decoder) if guidance.on and guidance.decoder else None
    if offload:
        weights = max(model_bytes(m) for m in comp.models()) + model_bytes(tiny, teacher.model)
    else:
        weights = model_bytes(*comp.models(), tiny, teacher.model)
    micro = min(batch_size, guidance.micro_batch or batch_size)
    return MemoryEstimate(weights, guidance_bytes_per_image(comp, teacher, sampler, guidance), micro, batch_size)
