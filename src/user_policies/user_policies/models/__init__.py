"""Torch policy models: LayerNorm MLP, ResNet-10 pixel encoder, tanh-Gaussian actor."""

from user_policies.models.actor import Actor, build_actor
from user_policies.models.mlp import MLP
from user_policies.models.resnet10 import ObservationEncoder, ResNet10

__all__ = ["MLP", "Actor", "ObservationEncoder", "ResNet10", "build_actor"]
