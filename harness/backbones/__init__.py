"""Backbones: pretrained encoders behind one interface that returns all hidden states."""

from harness.backbones.spec import BACKBONES, BackboneSpec, Features, register_backbone

__all__ = ["BACKBONES", "BackboneSpec", "Features", "register_backbone"]
