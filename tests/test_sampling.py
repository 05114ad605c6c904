"""Sampler properties on known ODEs: exactness, order of accuracy, schedules."""

import math

import pytest
import torch

from sora_cli.sampling import (
    SAMPLERS,
    auto_shift,
    classifier_free_guidance,
    flow_sigmas,
    sample_dpmpp_2m,
    sample_euler,
    sample_heun,
)


def test_sigmas_run_from_noise_to_data_and_shift_keeps_the_ends():
    for shift in (1.0, 3.0):
        s = flow_sigmas(10, shift)
        assert len(s) == 11 and s[0] == 1.0 and s[-1] == 0.0
        assert all(a > b for a, b in zip(s, s[1:]))
    assert flow_sigmas(10, 3.0)[5] > flow_sigmas(10, 1.0)[5]  # shift spends more steps at high noise


def test_auto_shift_grows_with_tokens_and_is_capped():
    assert auto_shift(256) < auto_shift(2048) < auto_shift(4096) == auto_shift(10**6)


def test_euler_is_exact_on_a_constant_velocity_field():
    x1 = torch.randn(3, 4)
    v = torch.randn(3, 4)
    out = sample_euler(lambda x, s: v, x1, flow_sigmas(3, 2.0))
    torch.testing.assert_close(out, x1 - v)  # integral of v from sigma 1 to 0


def _linear_ode_error(sampler, steps):
    # dx/dsigma = x: exact solution x(0) = x(1) * exp(-1)
    x1 = torch.tensor([1.0], dtype=torch.float64)
    sigmas = [1 - i / steps for i in range(steps + 1)]
    return abs(sampler(lambda x, s: x, x1, sigmas).item() - math.exp(-1))


def test_heun_is_second_order_and_euler_first_order():
    def order(sampler):
        e1, e2 = _linear_ode_error(sampler, 20), _linear_ode_error(sampler, 40)
        return math.log2(e1 / e2)

    assert order(sample_euler) == pytest.approx(1.0, abs=0.15)
    x1 = torch.tensor([1.0], dtype=torch.float64)
    errs = []
    for n in (20, 40):
        sig = [1 - i / n * 0.5 for i in range(n + 1)]  # 1 -> 0.5: Heun's final step to 0 would be Euler
        errs.append(abs(sample_heun(lambda x, s: x, x1, sig).item() - math.exp(-0.5)))
    assert math.log2(errs[0] / errs[1]) == pytest.approx(2.0, abs=0.2)


def test_dpmpp_2m_recovers_data_exactly_when_the_model_is_perfect():
    # For a single data point x0 the true velocity is (x - x0) / sigma; any consistent solver lands on x0.
    x0, noise = torch.randn(2, 5, dtype=torch.float64)
    for name, sampler in SAMPLERS.items():
        out = sampler(lambda x, s: (x - x0) / s, noise, flow_sigmas(7, 3.0))
        torch.testing.assert_close(out, x0, msg=name)


def test_dpmpp_2m_beats_euler_on_a_curved_path():
    # A Gaussian data distribution N(0, c^2): the exact velocity is known in closed form.
    c = 0.3

    def velocity(x, s):
        var = (1 - s) ** 2 * c**2 + s**2
        x0_hat = (1 - s) * c**2 / var * x
        return (x - x0_hat) / s

    noise = torch.tensor([1.3], dtype=torch.float64)
    exact = sample_euler(velocity, noise, flow_sigmas(4000, 1.0))
    err_euler = abs(sample_euler(velocity, noise, flow_sigmas(10)) - exact).item()
    err_dpm = abs(sample_dpmpp_2m(velocity, noise, flow_sigmas(10)) - exact).item()
    assert err_dpm < err_euler / 3


def test_guidance_one_is_the_conditional_velocity_and_scales_the_difference():
    pair = lambda x, s: (x + 1, x)  # noqa: E731
    x = torch.zeros(2)
    torch.testing.assert_close(classifier_free_guidance(pair, 1.0)(x, 0.5), x + 1)
    torch.testing.assert_close(classifier_free_guidance(pair, 4.0)(x, 0.5), x + 4)


def test_samplers_report_progress_once_per_step():
    for sampler in SAMPLERS.values():
        seen = []
        sampler(lambda x, s: x, torch.ones(1), flow_sigmas(5), lambda done, total: seen.append((done, total)))
        assert seen == [(i, 5) for i in range(1, 6)]
