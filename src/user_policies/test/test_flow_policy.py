"""Flow policy (SAC Flow): gradients through every Euler step, a correct path log-probability, chunks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from user_policies.policies.base import build_policy
from user_policies.policies.flow import FlowPolicy
from user_policies.policies.gaussian import tanh_log_det
from user_policies.policy_spec import PolicySpec

torch.set_num_threads(1)


def flow(action_dim: int = 3, chunk: int = 1, state_dim: int = 5, **options) -> FlowPolicy:
    spec = PolicySpec(kind="flow", state_dim=state_dim, action_dim=action_dim, chunk_size=chunk,
                      options={"d_model": 16, "n_heads": 2, "n_layers": 2, **options})
    policy = build_policy(spec)
    assert isinstance(policy, FlowPolicy)
    return policy


@pytest.mark.parametrize("options", [{}, {"velocity": "gated"}, {"noise": "learned"}])
def test_gradients_reach_every_euler_step_and_log_probs_are_finite(options: dict) -> None:
    torch.manual_seed(0)
    policy = flow(flow_steps=4, **options)
    features = policy.encoder({"state": torch.randn(64, 5)})
    velocities: list[torch.Tensor] = []
    x, log_prob = policy.rollout(features, noise_std=0.3, velocities=velocities)
    assert x.shape == (64, 1, 3) and log_prob.shape == (64,) and bool(torch.isfinite(log_prob).all())
    assert len(velocities) == 4
    for v in velocities:
        v.retain_grad()
    (torch.tanh(x).sum() + log_prob.sum()).backward()
    for k, v in enumerate(velocities):
        assert v.grad is not None and v.grad.abs().sum() > 0, f"no gradient at Euler step {k}"
    for name, param in policy.named_parameters():
        # norm2 normalises the query of the cross-attention, whose weights over a single memory token
        # (a state-only policy) are 1 whatever the query: it cannot matter there.
        if name.startswith(("decoder", "action_in", "time_mlp", "head", "memory_in")) and "norm2" not in name:
            assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_log_prob_agrees_with_monte_carlo_change_of_variables_in_one_dimension() -> None:
    """K = 1, one action dim: p(a) = E_{x0~N}[π(x0, a) / N(x0)] from the policy's own path density
    (with the tanh Jacobian) must integrate to 1 over (-1, 1) and match a histogram of sampled actions."""
    torch.manual_seed(3)
    sigma = 0.3
    policy = flow(action_dim=1, state_dim=2, flow_steps=1, noise_std_train=sigma)
    with torch.no_grad():
        features = policy.encoder({"state": torch.tensor([[0.4, -0.7]])})
        samples, _ = policy.rollout(features.expand(200_000, -1), sigma)
        actions = torch.tanh(samples).flatten().numpy()

        u_grid = torch.linspace(-12.0, 12.0, 601)  # pre-tanh actions: covers the saturated tails too
        x0 = torch.randn(4000)
        memory_features = features.expand(len(x0), -1)
        v, _ = policy.velocity(x0.view(-1, 1, 1), 0, policy.memory(memory_features))
        density_u = []
        for u in u_grid:
            eps = (u - x0 - v.flatten()) / sigma  # the noise that lands this path on action tanh(u)
            x_end, log_prob = policy.rollout(
                memory_features, sigma, noise=[x0.view(-1, 1, 1), eps.view(-1, 1, 1)]
            )
            torch.testing.assert_close(x_end.flatten(), u.expand(len(x0)), atol=1e-4, rtol=1e-5)
            log_base = -0.5 * x0**2 - 0.5 * math.log(2 * math.pi)
            log_jacobian = tanh_log_det(u.view(1, 1))  # da/du: back from the action's density to u's
            density_u.append(torch.exp(log_prob - log_base + log_jacobian).mean().item())
    u = u_grid.double().numpy()
    density_u = np.array(density_u)
    assert abs(np.trapezoid(density_u, u) - 1.0) < 0.02  # the path density, marginalised, is normalised
    cdf = np.concatenate([[0.0], np.cumsum((density_u[1:] + density_u[:-1]) / 2 * np.diff(u))])
    edges = np.linspace(-1.0, 1.0, 21)
    with np.errstate(divide="ignore"):
        predicted = np.diff(np.interp(np.arctanh(edges), u, cdf))  # each bin's probability from the density
    observed = np.histogram(actions, bins=edges)[0] / len(actions)
    assert (observed > 0.02).sum() >= 6  # the check covers a spread-out distribution
    np.testing.assert_allclose(observed, predicted, atol=0.004)

def test_chunks_have_the_configured_shape_and_deterministic_actions_repeat() -> None:
    torch.manual_seed(0)
    policy = flow(action_dim=2, chunk=5, flow_steps=3)
    obs = {"state": np.linspace(-1, 1, 5, dtype=np.float32)}
    chunk = policy.act(obs, deterministic=True)
    assert chunk.shape == (5, 2) and chunk.dtype == np.float32 and np.all(np.abs(chunk) < 1)
    np.testing.assert_array_equal(chunk, policy.act(obs, deterministic=True))
    assert not np.array_equal(policy.act(obs), policy.act(obs))  # rollout noise (x0 and sigma 0.02)
    action, log_prob = policy.sample_from_features(policy.encoder({"state": torch.randn(7, 5)}))
    assert action.shape == (7, 10) and log_prob.shape == (7,)


def test_pixel_features_become_one_memory_token_per_camera_and_the_state() -> None:
    spec = PolicySpec(kind="flow", state_dim=4, action_dim=2, cameras=("wrist", "front"), image_size=(32, 32),
                      image_latent_dim=8, state_latent_dim=4, options={"d_model": 16, "n_heads": 2})
    policy = build_policy(spec)
    obs = {"state": torch.randn(3, 4), **{c: torch.randint(0, 255, (3, 32, 32, 3), dtype=torch.uint8)
                                            for c in spec.cameras}}
    assert policy.memory(policy.encoder(obs)).shape == (3, 3, 16)
    action, log_prob = policy.sample(obs)
    assert action.shape == (3, 2) and bool(torch.isfinite(log_prob).all())


def test_gated_velocity_starts_almost_open() -> None:
    policy = flow(velocity="gated")
    assert policy.gate is not None
    assert torch.all(policy.gate.weight == 0) and torch.all(policy.gate.bias == 5.0)
