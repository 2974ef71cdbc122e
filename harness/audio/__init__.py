"""Offline audio data: eSpeak NG speech synthesis, 16-bit WAV input/output and a synthesised keyword corpus.

Nothing here is imported by `harness` itself; torch/torchaudio load only when resampling is used.
"""
