"""Gaussian random fields on a periodic square: the FNO initial vorticity.

w0 ~ N(0, sigma^2 (-Delta + tau^2 I)^(-alpha)) with periodic boundaries and zero mean; FNO's
Navier-Stokes data use alpha = 2.5, tau = 7, sigma = tau^(alpha - 1) (= tau^(0.5 (2 alpha - d)),
d = 2) on the unit square.

Paper: Li, Kovachki, Azizzadenesheli, Liu, Bhattacharya, Stuart, Anandkumar, "Fourier Neural
Operator for Parametric Partial Differential Equations", ICLR 2021, arXiv 2010.08895.
Reference matched: neuraloperator/neuraloperator@11971af4bfd15880f12aca43f1b5669eadc893ed,
`data_generation/navier_stokes/random_fields.py` (`GaussianRF`, dim 2, periodic): complex white
noise scaled by sqrt(eigenvalues) = N^2 sqrt(2) sigma ((2 pi |k| / L)^2 + tau^2)^(-alpha/2), the
k = 0 coefficient zeroed, and the real part of the inverse FFT kept.

Deviations:
- The domain length L is a parameter (the reference fixes L = 1), so the Kolmogorov-flow
  variant on [0, 2 pi)^2 draws from the same family.
- Draws come from a caller-given `torch.Generator` (the reference uses the global RNG), so a
  dataset is reproducible from its seed alone.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pde.solvers.spectral import integer_wavenumbers


def gaussian_random_field(
    n_samples: int,
    resolution: int,
    *,
    alpha: float = 2.5,
    tau: float = 7.0,
    sigma: float | None = None,
    domain_length: float = 1.0,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Draw `n_samples` zero-mean periodic fields: (N, S, S) on the CPU.

    Args:
        alpha: smoothness exponent of the covariance operator.
        tau: inverse length scale (in units of angular wavenumber).
        sigma: amplitude; None gives the reference's tau^(alpha - 1).
        domain_length: side L of the periodic square.
        generator: the source of randomness (seed it for reproducible data).
    """
    if sigma is None:
        sigma = tau ** (alpha - 1.0)
    full, _ = integer_wavenumbers(resolution)
    k2 = (2 * math.pi / domain_length) ** 2 * (full[:, None] ** 2 + full[None, :] ** 2)  # (S, S)
    sqrt_eig = resolution**2 * math.sqrt(2.0) * sigma * (k2 + tau**2) ** (-alpha / 2.0)
    sqrt_eig[0, 0] = 0.0  # zero mean
    noise = torch.randn(n_samples, resolution, resolution, 2, generator=generator, dtype=torch.float64)
    coeffs = sqrt_eig * torch.complex(noise[..., 0], noise[..., 1])  # (N, S, S)
    return torch.fft.ifft2(coeffs).real.to(dtype)
