"""Word-level tags to and from sub-word positions, as the harness's token classification does it
(harness/text_tasks.py): the first sub-word of each word carries the word's label; at prediction each word
takes the tag predicted on its first sub-word, and words cut off by max_length are predicted 'O'.
Pure Python, so the tests check it without loading torch."""

from __future__ import annotations

from collections.abc import Sequence

IGNORE = -100  # the label index cross-entropy (and transformers' models) leave out of the loss


def first_subword_labels(word_ids: Sequence[int | None], labels: Sequence[int]) -> list[int]:
    """Each word's label on its first sub-word, IGNORE on the others and on special tokens."""
    out, previous = [], None
    for word in word_ids:
        out.append(labels[word] if word is not None and word != previous else IGNORE)
        previous = word
    return out


def word_tags(predicted: Sequence[int], word_ids: Sequence[int | None], words: int, labels: Sequence[str]) -> list[str]:
    """Each word's tag from its first sub-word's prediction; words cut off by max_length stay 'O'."""
    tags, previous = ["O"] * words, None
    for position, word in enumerate(word_ids):
        if word is not None and word != previous:
            tags[word] = labels[predicted[position]]
        previous = word
    return tags
