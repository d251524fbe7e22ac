"""SAC Flow (Zhang et al. 2025, "SAC Flow: Sample-Efficient Reinforcement Learning of Flow-Based
Policies via Velocity-Reparameterized Sequential Modeling"; RLinf's real-world recipe).

The flow policy (:class:`user_policies.policies.flow.FlowPolicy`) integrates a velocity network
over K Euler steps from Gaussian noise; its noise-augmented rollout gives a tractable
log-probability, so SAC's critic target, actor loss and temperature apply unchanged: this is
:class:`~user_learner.algorithms.sac.SAC` with a flow policy and the recipe's defaults (γ 0.96,
critic/actor ratio 4, grad clip 1, no entropy backup, RLPD-style demo sampling as an option).
"""

from __future__ import annotations

import dataclasses

from user_learner.algorithms.base import ALGORITHMS
from user_learner.algorithms.sac import SAC, SACConfig
from user_policies.policies.flow import FlowPolicy


@dataclasses.dataclass(frozen=True)
class SACFlowConfig(SACConfig):
    """SAC hyperparameters with SAC Flow's real-world defaults (RECIPES.md)."""

    gamma: float = 0.96
    critic_actor_ratio: int = 4
    grad_clip: float = 1.0
    backup_entropy: bool = False


@ALGORITHMS.register("sac_flow")
class SACFlow(SAC):
    """SAC on a flow policy (see the module docstring)."""

    Config = SACFlowConfig
    policy_class = FlowPolicy
