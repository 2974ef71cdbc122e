"""Greedy Whisper decoding, for tests only: proves converted weights really transcribe speech.

The harness uses only Whisper's encoder, so decoding lives with the tests rather than in the package.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import WhisperFeatureExtractor

from harness.backbones.audio import SAMPLE_RATE
from harness.backbones.whisper_convert import is_multilingual, whisper_special_tokens


def _prompt(model: Any, ids: dict[str, int]) -> list[int]:
    """<|startoftranscript|> [<|en|> <|transcribe|> if multilingual] <|notimestamps|>."""
    prompt = [ids["<|startoftranscript|>"]]
    if is_multilingual(model.config):
        prompt += [ids["<|en|>"], ids["<|transcribe|>"]]
    return [*prompt, ids["<|notimestamps|>"]]


def _suppressed(model: Any, eot: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(masks of ids never emitted, ids not emitted as the first token), as Whisper's decoder applies them."""
    suppress = torch.zeros(model.config.vocab_size, dtype=torch.bool)
    suppress[eot + 1:] = True  # every id after <|endoftext|> is a special or timestamp token
    suppress[list(model.config.suppress_tokens or [])] = True
    begin = suppress.clone()
    begin[[eot, *(model.config.begin_suppress_tokens or [])]] = True
    return suppress, begin


def greedy_transcribe(model: Any, tokenizer_json: Path, audio_16k: np.ndarray, max_new_tokens: int = 60) -> str:
    """Greedy English transcription of one 16 kHz mono clip (up to 30 s): a smoke test that the weights work.

    Special and timestamp tokens are never emitted, and the config's suppressed tokens are honoured as Whisper does.
    """
    ids = whisper_special_tokens(tokenizer_json)
    eot = ids["<|endoftext|>"]
    extractor = WhisperFeatureExtractor(feature_size=model.config.num_mel_bins)
    features = extractor(np.asarray(audio_16k, dtype=np.float32), sampling_rate=SAMPLE_RATE,
                         return_tensors="pt")["input_features"]
    param = next(model.parameters())
    suppress, begin = _suppressed(model, eot)
    # transformers 5.x renamed the decoder cache argument and output field from past_key_values to cache.
    cache_name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    tokens: list[int] = []
    with torch.inference_mode():
        encoded = model.model.encoder(features.to(param.device, param.dtype))
        step_input, past = torch.tensor([_prompt(model, ids)], device=param.device), None
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
