"""Learning algorithms (pure torch): SAC with a REDQ critic ensemble; RLPD is SAC with 50/50 demo batches."""

from user_learner.algorithms.sac import SAC, CriticEnsemble, SACConfig

__all__ = ["SAC", "CriticEnsemble", "SACConfig"]
