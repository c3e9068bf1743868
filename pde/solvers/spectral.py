"""Fourier-space helpers shared by the spectral solvers: wavenumbers, the 2/3 rule, resampling.

Layout: real FFTs over the trailing spatial axes, so a 2-D field (..., Y, X) has coefficients
(..., Y, X // 2 + 1) with `ky` along dim -2 (`fftfreq` order) and `kx` along dim -1 (`rfftfreq`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def integer_wavenumbers(n: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Integer wavenumbers of an n-point axis: (full fftfreq order (n,), half rfftfreq order (n//2+1,))."""
    full = torch.fft.fftfreq(n, d=1.0 / n, device=device, dtype=torch.float64)
    half = torch.fft.rfftfreq(n, d=1.0 / n, device=device, dtype=torch.float64)
    return full, half


def wavenumbers_2d(n: int, length: float, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Angular wavenumbers (ky (n, 1), kx (1, n//2+1)) of an n x n periodic grid of side `length`."""
    full, half = integer_wavenumbers(n, device)
    scale = 2 * math.pi / length
    return (scale * full)[:, None], (scale * half)[None, :]


def dealias_mask_1d(n: int, device: torch.device | str = "cpu") -> Tensor:
    """2/3 rule on an rfft axis: keep |k| <= (2/3)(n/2), as bool (n//2+1,)."""
    _, half = integer_wavenumbers(n, device)
    return half <= (2.0 / 3.0) * (n // 2)


def dealias_mask_2d(n: int, device: torch.device | str = "cpu") -> Tensor:
    """2/3 rule per axis (FNO's square mask): keep |ky|, |kx| <= (2/3)(n/2), as bool (n, n//2+1)."""
    full, half = integer_wavenumbers(n, device)
    k_max = (2.0 / 3.0) * (n // 2)
    return (full.abs() <= k_max)[:, None] & (half <= k_max)[None, :]


def resample(field: Tensor, size: int, ndim: int) -> Tensor:
    """Periodic field (..., *S) on an N^ndim grid -> size^ndim by Fourier truncation or zero padding.

    Modes both grids hold exactly are kept (Nyquist modes are dropped), so downsampling a fine
    run this way equals what a coarse spectral solver represents.
    """
    n = field.shape[-1]
    dims = tuple(range(-ndim, 0))
    coeffs = torch.fft.rfftn(field, dim=dims, norm="forward")
    m = min(n, size) // 2  # modes |k| < m are kept
    shape = (*field.shape[:-ndim], *([size] * (ndim - 1)), size // 2 + 1)
    out = torch.zeros(shape, dtype=coeffs.dtype, device=field.device)
    if ndim == 1:
        out[..., :m] = coeffs[..., :m]
    elif ndim == 2:
        out[..., :m, :m] = coeffs[..., :m, :m]
        out[..., size - m + 1:, :m] = coeffs[..., n - m + 1:, :m]
    else:
        raise ValueError(f"resample supports 1-D and 2-D fields, got ndim={ndim}")
    return torch.fft.irfftn(out, s=[size] * ndim, dim=dims, norm="forward")
