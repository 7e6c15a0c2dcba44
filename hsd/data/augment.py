"""Batched on-device augmentation of frame batches x [T, N, C, H, W].

Each sample draws one transform and applies it to all of its T frames (an event stream is one
scene; per-frame jitter would invent motion). Parameters come from a torch.Generator, so a seeded
run augments identically; the image ops run on x's device in one call for the whole batch.

- "flip_roll" (TET / HSD's code): horizontal flip with p = 0.5, then a circular shift
  torch.roll by (dy, dx), each uniform in {-5, ..., 5} pixels.
- "nda" (Li et al., "Neuromorphic Data Augmentation for Training Spiking Neural Networks",
  ECCV 2022): horizontal flip with p = 0.5 (as the NDA training pipelines apply before it), then
  ONE of {roll +-5 px, rotate by U(-30, 30) degrees, shear-x by U(-30, 30) degrees} chosen
  uniformly per sample. Rotation and shear use F.affine_grid + F.grid_sample (nearest, zero fill,
  like torchvision's RandomRotation / RandomAffine defaults); for an output pixel at normalized
  (u, v) the input is sampled at
      rotate:  (cos a * u - sin a * v,  sin a * u + cos a * v)
      shear-x: (u + tan s * v,  v)
- "roll": the roll of "flip_roll" without the flip, for gesture data: a horizontal flip turns a
  left swipe / clockwise circle / left-hand wave into its mirror class, i.e. a wrong label.
- "none": identity (what evaluation uses).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hsd.config import AUGMENTATIONS  # the one list of names (re-exported here)

MAX_SHIFT = 5
MAX_DEGREES = 30.0


def _uniform(n: int, lo: float, hi: float, generator) -> torch.Tensor:
    dev = generator.device if generator is not None else "cpu"
    return lo + (hi - lo) * torch.rand(n, generator=generator, device=dev)


def _integers(n: int, lo: int, hi: int, generator) -> torch.Tensor:
    """Uniform integers in [lo, hi] (inclusive)."""
    dev = generator.device if generator is not None else "cpu"
    return torch.randint(lo, hi + 1, (n,), generator=generator, device=dev)


def flip_roll(
    x: torch.Tensor, flip: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor
) -> torch.Tensor:
    """Per sample n: optional horizontal flip, then torch.roll by (dy[n], dx[n]) (circular).

    out[..., n, :, h, w] = x'[..., n, :, (h - dy) mod H, (w - dx) mod W], x' = flipped x.
    """
    t, n, c, h, w = x.shape
    dev = x.device
    rows = (torch.arange(h, device=dev)[None] - dy.to(dev)[:, None]) % h  # [N, H]
    cols = (torch.arange(w, device=dev)[None] - dx.to(dev)[:, None]) % w  # [N, W]
    cols = torch.where(flip.to(dev)[:, None], w - 1 - cols, cols)
    x = x.gather(3, rows.view(1, n, 1, h, 1).expand(t, n, c, h, w))
    return x.gather(4, cols.view(1, n, 1, 1, w).expand(t, n, c, h, w))


def affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Warp every frame of sample n with the 2x3 matrix theta[n] (nearest, zeros outside)."""
    t, n, c, h, w = x.shape
    flat = x.permute(1, 0, 2, 3, 4).reshape(n, t * c, h, w)  # frames of a sample share a grid
    grid = F.affine_grid(theta.to(x.device, x.dtype), [n, t * c, h, w], align_corners=False)
    out = F.grid_sample(flat, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out.reshape(n, t, c, h, w).permute(1, 0, 2, 3, 4)


def _nda_theta(kind: torch.Tensor, generator) -> torch.Tensor:
    """2x3 matrices: identity for roll (kind 0), rotation (1) or x-shear (2)."""
    n = kind.shape[0]
    angle = torch.deg2rad(_uniform(n, -MAX_DEGREES, MAX_DEGREES, generator)).cpu()
    kind = kind.cpu()
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    rot, shear = kind == 1, kind == 2
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta[rot, 0, 0], theta[rot, 0, 1] = cos[rot], -sin[rot]
    theta[rot, 1, 0], theta[rot, 1, 1] = sin[rot], cos[rot]
    theta[shear, 0, 1] = torch.tan(angle[shear])
    return theta


def augment(x: torch.Tensor, kind: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Return x [T, N, C, H, W] augmented with `kind` ("none" returns x itself)."""
    if kind not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {kind!r}; valid: {', '.join(AUGMENTATIONS)}")
    if x.dim() != 5:
        raise ValueError(f"augment expects x [T, N, C, H, W], got shape {tuple(x.shape)}")
    if kind == "none":
        return x
    n = x.shape[1]
    flip = _integers(n, 0, 1, generator).bool()
    dy = _integers(n, -MAX_SHIFT, MAX_SHIFT, generator)
    dx = _integers(n, -MAX_SHIFT, MAX_SHIFT, generator)
    if kind == "flip_roll":
        return flip_roll(x, flip, dy, dx)
    if kind == "roll":
        return flip_roll(x, torch.zeros_like(flip), dy, dx)
    choice = _integers(n, 0, 2, generator)  # 0 roll, 1 rotate, 2 shear-x
    rolled = choice == 0
    x = flip_roll(x, flip, dy * rolled, dx * rolled)  # flip for all, shift for "roll" only
    warp = choice != 0
    if bool(warp.any()):
        idx = warp.nonzero().squeeze(1).to(x.device)
        x = x.clone()
        x[:, idx] = affine(x[:, idx], _nda_theta(choice[warp], generator))
    return x
