"""Solver correctness: conservation, analytic decay, resolution independence, exact solutions,
determinism under a seed, the GRF spectrum, and clear errors for bad configs."""

import math

import numpy as np
import pytest
import torch

from pde.solvers.common import Integrator, SolverConfig, SolverDivergedError, generator, record
from pde.solvers.diffusion_reaction import (
    DiffusionReactionConfig,
    DiffusionReactionRHS,
    laplacian,
    rk4,
    simulate_diffusion_reaction,
)
from pde.solvers.grf import gaussian_random_field
from pde.solvers.navier_stokes import (
    KolmogorovConfig,
    NavierStokesConfig,
    VorticityStepper,
    fno_forcing,
    kolmogorov_forcing,
    simulate_kolmogorov,
    simulate_navier_stokes,
)
from pde.solvers.spectral import resample
from pde.solvers.spectral1d import (
    BurgersConfig,
    KdVConfig,
    KSConfig,
    simulate_1d,
    stepper_for,
)
from seqlab.config import from_dict
from seqlab.errors import ConfigError

F64 = torch.float64


def advance(stepper, w, steps):
    w_hat = stepper.to_spectral(w)
    for _ in range(steps):
        w_hat = stepper.step(w_hat)
    return stepper.to_physical(w_hat)


def rel_l2(a, b):
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def grid(n, length):
    return torch.arange(n, dtype=F64) * (length / n)


# ---------------------------------------------------------------------------- Navier-Stokes
@pytest.mark.parametrize("scheme", ["heun", "euler"])
def test_ns_conserves_the_mean_vorticity(scheme):
    offsets = torch.tensor([0.3, -1.0, 2.0], dtype=F64)[:, None, None]
    w0 = gaussian_random_field(3, 32, generator=generator(1), dtype=F64) + offsets
    stepper = VorticityStepper(32, 1.0, 1e-3, 0.0, fno_forcing(32), 1e-2, scheme, F64)
    w = advance(stepper, w0, 100)
    assert rel_l2(w - offsets, w0 - offsets) > 0.1  # the flow evolved
    torch.testing.assert_close(w.mean(dim=(-2, -1)), w0.mean(dim=(-2, -1)), atol=1e-10, rtol=0)


@pytest.mark.parametrize(("scheme", "length", "drag"),
                         [("heun", 1.0, 0.0), ("euler", 1.0, 0.0), ("heun", 2 * math.pi, 0.1)])
def test_a_single_fourier_mode_decays_at_the_viscous_rate(scheme, length, drag):
    # For one mode u . grad w vanishes exactly, so w(t) = exp(-(nu |k|^2 + drag) t) w0.
    n, h, steps = 32, 1e-3, 200
    y, x = grid(n, length)[:, None], grid(n, length)[None, :]
    kx, ky = 2 * math.pi / length * 2, 2 * math.pi / length * 3
    nu = 1.0 / ((kx**2 + ky**2) * h * steps)  # decays by about 1/e
    w0 = torch.cos(kx * x + ky * y).expand(2, n, n)
    w = advance(VorticityStepper(n, length, nu, drag, None, h, scheme, F64), w0, steps)
    expected = math.exp(-(nu * (kx**2 + ky**2) + drag) * h * steps) * w0
    assert rel_l2(w, expected) < 1e-5
    assert abs(float(w.norm() / w0.norm()) - 1) > 0.05  # it did decay


def test_64_grid_matches_a_128_grid_run_truncated_to_64():
    w64 = gaussian_random_field(2, 64, generator=generator(0), dtype=F64)
    w128 = resample(w64, 128, ndim=2)  # the same field, zero-padded in Fourier space
    out64 = advance(VorticityStepper(64, 1.0, 1e-3, 0.0, fno_forcing(64), 1e-2, "heun", F64), w64, 200)
    out128 = advance(VorticityStepper(128, 1.0, 1e-3, 0.0, fno_forcing(128), 1e-2, "heun", F64), w128, 200)
    assert rel_l2(out64, w64) > 0.1  # the flow evolved
    assert rel_l2(resample(out128, 64, ndim=2), out64) < 1e-5


def test_euler_and_heun_agree_at_small_steps():
    w0 = gaussian_random_field(2, 32, generator=generator(2), dtype=F64)
    outs = [advance(VorticityStepper(32, 1.0, 1e-3, 0.0, fno_forcing(32), 2e-3, scheme, F64), w0, 250)
            for scheme in ("euler", "heun")]
    assert rel_l2(outs[0], outs[1]) < 1e-4


def test_kolmogorov_forcing_is_the_curl_of_the_velocity_forcing():
    n, k = 32, 4
    y = grid(n, 2 * math.pi)
    f = kolmogorov_forcing(n, k, amplitude=2.0)
    # curl (A sin(k y), 0) = -d/dy (A sin(k y)) = -A k cos(k y), constant along x
    torch.testing.assert_close(f, (-2.0 * k * torch.cos(k * y))[:, None].expand(n, n))


def ns_tiny(**kw):
    return NavierStokesConfig(**{"resolution": 32, "n_samples": 3, "n_frames": 4, "dt": 0.5, "substeps": 25, **kw})


def test_same_seed_same_data_other_seed_other_data_any_batch_size():
    a = simulate_navier_stokes(ns_tiny(seed=5))
    b = simulate_navier_stokes(ns_tiny(seed=5, batch_size=2))
    c = simulate_navier_stokes(ns_tiny(seed=6))
    np.testing.assert_allclose(a.vorticity.values, b.vorticity.values, rtol=0, atol=1e-6)
    assert np.abs(a.vorticity.values - c.vorticity.values).max() > 0.1


def test_navier_stokes_dataset_layout_and_provenance():
    ds = simulate_navier_stokes(ns_tiny())
    assert ds.vorticity.dims == ("sample", "time", "y", "x")
    assert ds.vorticity.shape == (3, 4, 32, 32) and ds.vorticity.dtype == np.float32
    np.testing.assert_allclose(ds.time.values, [1.0, 1.5, 2.0, 2.5])  # t_start = 1, dt = 0.5
    np.testing.assert_allclose(ds.x.values, np.arange(32) / 32)
    assert ds.attrs["equation"] == "navier_stokes_2d"
    assert (ds.attrs["viscosity"], ds.attrs["dt"], ds.attrs["resolution"], ds.attrs["seed"]) == (1e-3, 0.5, 32, 0)
    assert "Heun" in ds.attrs["solver"] and ds.attrs["source"] == "generated"
    assert "viscosity: 0.001" in ds.attrs["config"]


def test_kolmogorov_dataset_is_finite_and_records_its_physics():
    ds = simulate_kolmogorov(KolmogorovConfig(resolution=32, n_samples=2, n_frames=3, dt=0.5, substeps=50,
                                              t_start=1.0, reynolds=100.0, forcing_wavenumber=2))
    assert np.isfinite(ds.vorticity.values).all()
    assert ds.attrs["equation"] == "kolmogorov_2d"
    assert ds.attrs["reynolds"] == 100.0 and math.isclose(ds.attrs["viscosity"], 1e-2)
    assert (ds.attrs["drag"], ds.attrs["forcing_wavenumber"]) == (0.1, 2)
    assert math.isclose(ds.attrs["domain_length"], 2 * math.pi)


# -------------------------------------------------------------------------------- 1-D ETDRK4
def test_burgers_matches_the_cole_hopf_solution():
    # u = -2 nu phi_x / phi with phi = a + b exp(-nu t) cos x solving the heat equation
    nu, a, b, t_end = 0.1, 2.0, 1.0, 1.0
    cfg = BurgersConfig(resolution=64, viscosity=nu, dt=t_end, substeps=500)
    x = grid(64, 2 * math.pi)

    def exact(t):
        decay = b * math.exp(-nu * t)
        return 2 * nu * decay * torch.sin(x) / (a + decay * torch.cos(x))

    stepper = stepper_for(cfg)
    v = torch.fft.rfft(exact(0.0)[None])
    for _ in range(cfg.substeps):
        v = stepper.step(v)
    u = torch.fft.irfft(v, n=64)[0]
    assert float((u - exact(t_end)).abs().max()) < 1e-10  # spectral in space, 4th order in time
    assert rel_l2(u, exact(0.0)) > 0.05


def test_kdv_soliton_travels_unchanged():
    c, x0, t_end = 1.0, 15.0, 2.0
    cfg = KdVConfig(resolution=256, domain_length=50.0, dt=t_end, substeps=1000)
    x = grid(256, 50.0)

    def soliton(t):
        return c / 2 / torch.cosh(math.sqrt(c) / 2 * (x - x0 - c * t)) ** 2

    stepper = stepper_for(cfg)
    v = torch.fft.rfft(soliton(0.0)[None])
    for _ in range(cfg.substeps):
        v = stepper.step(v)
    u = torch.fft.irfft(v, n=256)[0]
    assert float((u - soliton(t_end)).abs().max()) < 1e-5  # amplitude 0.5, moved by 2 widths
    assert float((soliton(t_end) - soliton(0.0)).abs().max()) > 0.3


@pytest.mark.parametrize("cfg", [
    BurgersConfig(resolution=128, n_samples=4, n_frames=11, dt=0.1, substeps=50),
    KSConfig(resolution=128, n_samples=4, n_frames=21, dt=1.0, substeps=20),
    KdVConfig(resolution=128, n_samples=4, n_frames=11, dt=0.1, substeps=100),
], ids=["burgers", "ks", "kdv"])
def test_1d_solvers_stay_finite_and_are_seeded(cfg):
    ds = simulate_1d(cfg)
    u = ds.u.values
    assert u.shape == (4, cfg.n_frames, 128) and ds.u.dims == ("sample", "time", "x")
    assert np.isfinite(u).all()
    np.testing.assert_allclose(np.abs(u[:, 0]).max(axis=1), 1.0)  # the initial condition's scaling
    assert ds.attrs["equation"] == cfg.equation
    np.testing.assert_array_equal(simulate_1d(cfg).u.values, u)


def test_burgers_keeps_the_maximum_principle():
    ds = simulate_1d(BurgersConfig(n_samples=4, n_frames=11, dt=0.2))
    peak = np.abs(ds.u.values).max(axis=2)  # (N, T)
    assert (peak <= peak[:, :1] + 0.02).all()  # |u| never grows (up to Gibbs ripples)


# ---------------------------------------------------------------------- diffusion-reaction
def dr_tiny(**kw):
    return DiffusionReactionConfig(**{"resolution": 16, "n_samples": 3, "n_frames": 5, "dt": 0.1, "substeps": 10, **kw})


def test_diffusion_reaction_is_finite_deterministic_and_has_two_fields():
    a, b = simulate_diffusion_reaction(dr_tiny()), simulate_diffusion_reaction(dr_tiny(batch_size=1))
    assert set(a.data_vars) == {"u", "v"} and a.u.dims == ("sample", "time", "y", "x")
    assert np.isfinite(a.u.values).all() and np.isfinite(a.v.values).all()
    np.testing.assert_allclose(a.u.values, b.u.values, rtol=0, atol=1e-6)
    np.testing.assert_allclose(a.x.values[[0, -1]], [-1 + 1 / 16, 1 - 1 / 16])  # cell centres on [-1, 1]
    assert np.abs(a.u.values - simulate_diffusion_reaction(dr_tiny(seed=1)).u.values).max() > 0.1


def test_no_flux_laplacian_conserves_the_total():
    fields = torch.randn(2, 2, 12, 12, dtype=F64)
    assert float(laplacian(fields, 0.1).sum(dim=(-2, -1)).abs().max()) < 1e-9


def test_a_uniform_state_follows_the_reaction_ode():
    from scipy.integrate import solve_ivp

    cfg = dr_tiny(resolution=8)
    k = cfg.k

    def ode(_, y):
        u, v = y
        return [u - u**3 - k - v, u - v]

    y0 = [0.4, -0.2]
    state = torch.tensor(y0, dtype=F64)[None, :, None, None].expand(1, 2, 8, 8).clone()
    step = rk4(DiffusionReactionRHS(cfg, "cpu", F64), 0.01).step
    for _ in range(100):
        state = step(state)
    expected = solve_ivp(ode, (0, 1.0), y0, rtol=1e-10, atol=1e-12).y[:, -1]
    np.testing.assert_allclose(state[0, :, 3, 3].numpy(), expected, rtol=1e-6)
    assert float(state.std(dim=(-2, -1)).max()) < 1e-12  # no flux in or out: it stays uniform


# ----------------------------------------------------------------------------------- GRF
def test_grf_has_zero_mean_and_the_reference_spectrum():
    n, alpha, tau = 8, 2.5, 7.0
    w = gaussian_random_field(4000, n, alpha=alpha, tau=tau, generator=generator(0), dtype=F64)
    torch.testing.assert_close(w.mean(dim=(-2, -1)), torch.zeros(4000, dtype=F64), atol=1e-12, rtol=0)
    power = (torch.fft.fft2(w).abs() ** 2).mean(0)
    sigma = tau ** (alpha - 1)
    for ky, kx in [(0, 1), (1, 1), (2, 0), (1, 3)]:
        expected = (n**2 * math.sqrt(2) * sigma) ** 2 * (4 * math.pi**2 * (kx**2 + ky**2) + tau**2) ** (-alpha)
        assert abs(float(power[ky, kx]) / expected - 1) < 0.08, (ky, kx)


# --------------------------------------------------------------------------- bad input
def test_a_diverging_solver_is_reported_with_the_time():
    def step(state):
        return state * float("nan")

    cfg = SolverConfig(resolution=4, n_samples=1, n_frames=3, dt=1.0, substeps=1)
    with pytest.raises(SolverDivergedError, match=r"t = 1\b.*substeps"):
        record(torch.zeros(1, 4), Integrator(step=step, observe=lambda s: s[:, None]), cfg, None)


@pytest.mark.parametrize(("cls", "values", "field"), [
    (NavierStokesConfig, {"viscosity": -1.0}, "viscosity"),
    (NavierStokesConfig, {"resolution": 63}, "resolution"),
    (NavierStokesConfig, {"t_start": 0.005}, "t_start"),
    (NavierStokesConfig, {"scheme": "rk4"}, "scheme"),
    (KolmogorovConfig, {"forcing_wavenumber": 30, "resolution": 64}, "forcing_wavenumber"),
    (BurgersConfig, {"n_samples": 0}, "n_samples"),
    (DiffusionReactionConfig, {"resolution": 128, "substeps": 2}, "substeps"),
])
def test_bad_config_values_name_the_field(cls, values, field):
    with pytest.raises(ConfigError, match=field):
        from_dict(cls, values)
