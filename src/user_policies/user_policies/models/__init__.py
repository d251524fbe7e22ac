"""Torch building blocks of the policies: LayerNorm MLP, ResNet-10 pixel encoder."""

from user_policies.models.mlp import MLP
from user_policies.models.resnet10 import ObservationEncoder, ResNet10

__all__ = ["MLP", "ObservationEncoder", "ResNet10"]
