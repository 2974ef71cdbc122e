"""CTranslate2 Whisper variables -> transformers' `WhisperForConditionalGeneration`: config and weights.

The packaged offline Whisper copies (tiny.en, base) ship only as CTranslate2 models (read by `ct2_reader`).
Every dimension of the config is read off the tensor shapes. CTranslate2 fuses projections: self-attention
`linear_0` is q;k;v (k's bias slot is zero-filled, and a key bias cannot change a softmax anyway, so it is
dropped), cross-attention `linear_1` is k;v. The decoder's output projection is an alias of the token
embeddings, i.e. tied weights.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

from harness.backbones.ct2_reader import read_ct2_model

MULTILINGUAL_VOCAB = 51865  # Whisper's rule: multilingual vocabularies have this many tokens or more (English: 51864)

# CTranslate2's ActivationType enum -> transformers activation names.
_ACTIVATIONS = {0: "relu", 1: "gelu_pytorch_tanh", 2: "silu", 3: "gelu", 4: "quick_gelu"}
# Scalar flags that only describe the architecture; transformers' Whisper hard-codes these values.
_FIXED_FLAGS = {"decoder/pre_norm": 1, "decoder/alibi": 0, "decoder/scale_embeddings": 0,
                "decoder/start_from_zero_embedding": 0}
_METADATA = {"encoder/num_heads", "decoder/num_heads", "decoder/activation", "decoder/alignment_heads",
             "decoder/alignment_layer", *_FIXED_FLAGS}

_TOP_LEVEL = {
    "encoder/conv1/weight": "model.encoder.conv1.weight",
    "encoder/conv1/bias": "model.encoder.conv1.bias",
    "encoder/conv2/weight": "model.encoder.conv2.weight",
    "encoder/conv2/bias": "model.encoder.conv2.bias",
    "encoder/position_encodings/encodings": "model.encoder.embed_positions.weight",
    "encoder/layer_norm/gamma": "model.encoder.layer_norm.weight",
    "encoder/layer_norm/beta": "model.encoder.layer_norm.bias",
    "decoder/embeddings/weight": "model.decoder.embed_tokens.weight",
    "decoder/position_encodings/encodings": "model.decoder.embed_positions.weight",
    "decoder/layer_norm/gamma": "model.decoder.layer_norm.weight",
    "decoder/layer_norm/beta": "model.decoder.layer_norm.bias",
    "decoder/projection/weight": "proj_out.weight",
}
_LAYER = re.compile(r"(encoder|decoder)/layer_(\d+)/(.+)")
_LAYER_PARTS = {
    "self_attention/layer_norm/gamma": "self_attn_layer_norm.weight",
    "self_attention/layer_norm/beta": "self_attn_layer_norm.bias",
    "self_attention/linear_1/weight": "self_attn.out_proj.weight",
    "self_attention/linear_1/bias": "self_attn.out_proj.bias",
    "attention/layer_norm/gamma": "encoder_attn_layer_norm.weight",
    "attention/layer_norm/beta": "encoder_attn_layer_norm.bias",
    "attention/linear_0/weight": "encoder_attn.q_proj.weight",
    "attention/linear_0/bias": "encoder_attn.q_proj.bias",
    "attention/linear_2/weight": "encoder_attn.out_proj.weight",
    "attention/linear_2/bias": "encoder_attn.out_proj.bias",
    "ffn/layer_norm/gamma": "final_layer_norm.weight",
    "ffn/layer_norm/beta": "final_layer_norm.bias",
    "ffn/linear_0/weight": "fc1.weight",
    "ffn/linear_0/bias": "fc1.bias",
    "ffn/linear_1/weight": "fc2.weight",
    "ffn/linear_1/bias": "fc2.bias",
}
# Fused projections: CTranslate2 prefix -> (transformers module, the stacked projections in order).
_FUSED = {"self_attention/linear_0": ("self_attn", ("q_proj", "k_proj", "v_proj")),
          "attention/linear_1": ("encoder_attn", ("k_proj", "v_proj"))}
_NO_BIAS = {"k_proj"}  # Whisper's key projections have no bias


def whisper_special_tokens(tokenizer_json: Path) -> dict[str, int]:
    """`<|...|>` special tokens -> ids, looked up by content: English-only and multilingual vocabularies differ."""
    data = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    return {t["content"]: int(t["id"]) for t in data.get("added_tokens", []) if t["content"].startswith("<|")}


def is_multilingual(config: Any) -> bool:
    """Whisper's own rule: multilingual vocabularies have 51865+ tokens (English-only: 51864)."""
    return int(config.vocab_size) >= MULTILINGUAL_VOCAB


# --- the config ------------------------------------------------------------------------------------

def _scalar(variables: Mapping[str, np.ndarray], name: str, default: int) -> int:
    return int(variables[name]) if name in variables else default


def _layer_count(variables: Mapping[str, np.ndarray], side: str) -> int:
    indices = {int(m.group(2)) for name in variables if (m := _LAYER.fullmatch(name)) and m.group(1) == side}
    if indices != set(range(len(indices))):
        raise ValueError(f"{side} layers are not numbered 0..N-1: {sorted(indices)}")
    return len(indices)


def _require(variables: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    if name not in variables:
        raise ValueError(f"not a Whisper CTranslate2 model: variable {name!r} is missing")
    return variables[name]


def _activation(variables: Mapping[str, np.ndarray]) -> str:
    """transformers' name for the model's activation, after checking the flags it cannot express."""
    for name, expected in _FIXED_FLAGS.items():
        if name in variables and int(variables[name]) != expected:
            raise ValueError(f"unsupported Whisper variant: {name} is {int(variables[name])}, expected {expected}")
    activation = _scalar(variables, "decoder/activation", 3)
    if activation not in _ACTIVATIONS:
        raise ValueError(f"unsupported activation id {activation} in decoder/activation")
    return _ACTIVATIONS[activation]


def _token_settings(vocab_size: int, special_tokens: Mapping[str, int] | None,
                    ct2_config: dict | None) -> dict[str, Any]:
    """Special token ids (from the tokenizer, else Whisper's fixed layout) and the suppressed token lists."""
    tokens = dict(special_tokens or {})
    eot = tokens.get("<|endoftext|>", 50257 if vocab_size >= MULTILINGUAL_VOCAB else 50256)
    sot = tokens.get("<|startoftranscript|>", eot + 1)
    settings: dict[str, Any] = {"bos_token_id": eot, "eos_token_id": eot, "pad_token_id": eot,
                                "decoder_start_token_id": sot}
    if ct2_config:
        if "suppress_ids" in ct2_config:
            settings["suppress_tokens"] = [int(i) for i in ct2_config["suppress_ids"]]
        if "suppress_ids_begin" in ct2_config:
            settings["begin_suppress_tokens"] = [int(i) for i in ct2_config["suppress_ids_begin"]]
    return settings


def whisper_config_from_variables(variables: Mapping[str, np.ndarray], ct2_config: dict | None = None,
                                  special_tokens: Mapping[str, int] | None = None) -> WhisperConfig:
    """A `transformers.WhisperConfig` whose every dimension is read off the tensor shapes.

    Head counts come from `encoder/num_heads`/`decoder/num_heads` when stored, else Whisper's d_model/64.
    Special token ids come from `special_tokens` (see `whisper_special_tokens`), else Whisper's fixed layout
    (<|endoftext|> 50256 English-only / 50257 multilingual, <|startoftranscript|> right after it).
    `ct2_config` (CTranslate2's config.json) supplies the suppressed token lists.
    """
    activation = _activation(variables)
    conv1 = _require(variables, "encoder/conv1/weight")
    d_model, n_mels = int(conv1.shape[0]), int(conv1.shape[1])
    embeddings = _require(variables, "decoder/embeddings/weight")
    projection = variables.get("decoder/projection/weight")
    tied = projection is None or projection is embeddings or np.array_equal(projection, embeddings)
    return WhisperConfig(
        vocab_size=int(embeddings.shape[0]), num_mel_bins=n_mels, d_model=d_model,
        encoder_layers=_layer_count(variables, "encoder"), decoder_layers=_layer_count(variables, "decoder"),
        encoder_attention_heads=_scalar(variables, "encoder/num_heads", d_model // 64),
        decoder_attention_heads=_scalar(variables, "decoder/num_heads", d_model // 64),
        encoder_ffn_dim=int(_require(variables, "encoder/layer_0/ffn/linear_0/weight").shape[0]),
        decoder_ffn_dim=int(_require(variables, "decoder/layer_0/ffn/linear_0/weight").shape[0]),
        max_source_positions=int(_require(variables, "encoder/position_encodings/encodings").shape[0]),
        max_target_positions=int(_require(variables, "decoder/position_encodings/encodings").shape[0]),
        activation_function=activation, tie_word_embeddings=tied,
        **_token_settings(int(embeddings.shape[0]), special_tokens, ct2_config),
    )


# --- the weights -----------------------------------------------------------------------------------

def whisper_state_dict(variables: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """CTranslate2 Whisper variables -> a `WhisperForConditionalGeneration` state dict (float32 tensors).

    Fused projections are split; ValueError names every variable that has no counterpart.
    """
    state: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    for name, array in variables.items():
        if name in _METADATA:
            continue
        if name in _TOP_LEVEL:
            state[_TOP_LEVEL[name]] = _tensor(array)
            continue
        match = _LAYER.fullmatch(name)
        mapped = match and _map_layer_variable(f"model.{match.group(1)}.layers.{match.group(2)}.",
                                               match.group(3), array, state)
        if not mapped:
            unmapped.append(name)
    if unmapped:
        raise ValueError(f"cannot map CTranslate2 Whisper variable(s) to transformers: {', '.join(unmapped)} "
                         "(int8-quantised models are not supported)")
    return state


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))


def _map_layer_variable(prefix: str, part: str, array: np.ndarray, state: dict[str, torch.Tensor]) -> bool:
    """Put one per-layer variable (split if fused) into `state`; False if it has no transformers counterpart."""
    if part in _LAYER_PARTS:
        state[prefix + _LAYER_PARTS[part]] = _tensor(array)
        return True
    fused, _, kind = part.rpartition("/")
    if fused not in _FUSED or kind not in ("weight", "bias"):
        return False
    module, projections = _FUSED[fused]
    if array.shape[0] % len(projections):
        raise ValueError(f"fused {prefix}{fused} has {array.shape[0]} rows, not divisible by {len(projections)}")
    for projection, chunk in zip(projections, np.split(array, len(projections)), strict=True):
        if not (kind == "bias" and projection in _NO_BIAS):
            state[f"{prefix}{module}.{projection}.{kind}"] = _tensor(chunk)
    return True


def _check_state_dict(expected: Mapping[str, Any], state: Mapping[str, Any]) -> None:
    """Name every missing/unexpected key and shape mismatch at once (load_state_dict reports them piecemeal)."""
    problems = [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    problems += [f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
                 for k, v in state.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    if problems:
        raise ValueError("converted Whisper weights do not fit transformers' model: " + "; ".join(problems))


# --- the conversion --------------------------------------------------------------------------------

def _sibling_json(paths: Sequence[Path], filename: str) -> Path | None:
    candidate = Path(paths[0]).parent / filename
    return candidate if candidate.is_file() else None


def convert_whisper(paths: Sequence[Path], ct2_config: dict | None = None,
                    tokenizer_json: Path | None = None) -> WhisperForConditionalGeneration:
    """A float32 `WhisperForConditionalGeneration` in eval mode, loaded strictly from a CTranslate2 model.bin.

    `paths` is the model.bin or its parts in order. `ct2_config` (config.json) and `tokenizer_json` default
    to the files next to the first part, when present, for the suppressed tokens and special token ids.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no model.bin path given")
    parsed = read_ct2_model(paths)
    if parsed.spec != "WhisperSpec":
        raise ValueError(f"{paths[0]} holds a CTranslate2 {parsed.spec!r}, not a Whisper model")
    if ct2_config is None and (config_path := _sibling_json(paths, "config.json")):
        ct2_config = json.loads(config_path.read_text(encoding="utf-8"))
    tokenizer_json = tokenizer_json or _sibling_json(paths, "tokenizer.json")
    special = whisper_special_tokens(tokenizer_json) if tokenizer_json else None
    config = whisper_config_from_variables(parsed.variables, ct2_config, special)
    state = whisper_state_dict(parsed.variables)
    model = WhisperForConditionalGeneration(config)
    _check_state_dict(model.state_dict(), state)
    model.load_state_dict(state, strict=True)
    return model.eval()
