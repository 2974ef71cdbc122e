"""Text: integrated gradients on the input word embeddings, summed over each word's sub-words.

Baseline: every word's sub-words replaced by the padding token ([CLS]/[SEP] kept), the usual choice for
BERT-style encoders (captum's BERT tutorials). Removing a word for the faithfulness curves uses the same
replacement, so the curves and the attributions agree on what "absent" means.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from harness.explain.base import (
    Attribution,
    Explainer,
    ExplainSettings,
    Item,
    batched_scores,
    completeness_gap,
    normalised,
)
from harness.metrics import iob2_entities
from harness.task import Example

TOP_WORDS = 8


class TextExplainer(Explainer):
    method = ("integrated gradients on the input word embeddings (captum LayerIntegratedGradients), "
              "pad-token baseline, summed per word")
    unit = "word"

    def __init__(self, task: Any, backbone: Any, protocol: Any, settings: ExplainSettings, device: str = "cpu"):
        super().__init__(settings, device)
        self.task = task
        self.tokenizer = backbone.tokenizer
        self.max_length = int(protocol.inputs.get("max_length", 128))
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    # --- encoding -----------------------------------------------------------------------------
    def _encode(self, text: Any) -> tuple[dict[str, torch.Tensor], list[int | None], list[str]]:
        split = isinstance(text, list | tuple)
        encoded = self.tokenizer(list(text) if split else text, is_split_into_words=split, truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
        word_ids = encoded.word_ids(0)
        n_words = max((w for w in word_ids if w is not None), default=-1) + 1
        if split:
            words = [str(w) for w in text[:n_words]]
        else:
            words = []
            for w in range(n_words):
                span = encoded.word_to_chars(0, w)
                words.append(text[span.start:span.end])
        inputs = {"input_ids": encoded["input_ids"].to(self.device),
                  "attention_mask": encoded["attention_mask"].to(self.device)}
        return inputs, word_ids, words

    @staticmethod
    def _word_matrix(word_ids: list[int | None], n_words: int) -> torch.Tensor:
        matrix = torch.zeros(n_words, len(word_ids))
        for position, word in enumerate(word_ids):
            if word is not None:
                matrix[word, position] = 1.0
        return matrix

    # --- the explained output -------------------------------------------------------------------
    def _output(self, model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, item: Item) -> torch.Tensor:
        """[batch] probability of the explained output."""
        probs = model.logits({"input_ids": input_ids, "attention_mask": attention_mask}).float().softmax(-1)
        return probs[:, item.target]

    def attribute(self, model: Any, item: Item) -> Attribution:
        from captum.attr import LayerIntegratedGradients

        ids, mask = item.inputs["input_ids"], item.inputs["attention_mask"]
        word_rows = item.display["word_matrix"].to(ids.device)
        baseline = torch.where(word_rows.sum(0).bool()[None], torch.full_like(ids, self.pad_id), ids)
        layer = model.backbone.model.get_input_embeddings()
        ig = LayerIntegratedGradients(lambda i, m: self._output(model, i, m, item), layer)
        attributions, delta = ig.attribute(ids, baselines=baseline, additional_forward_args=(mask,),
                                           n_steps=self.settings.ig_steps, internal_batch_size=self.settings.ig_steps,
                                           return_convergence_delta=True)
        per_token = attributions.sum(-1)[0].detach().float().cpu()
        gap = completeness_gap(attributions, delta)
        return Attribution((word_rows.cpu() @ per_token).numpy(), completeness_gap=gap)

    def scores(self, model: Any, item: Item, keep: np.ndarray) -> np.ndarray:
        ids, mask = item.inputs["input_ids"], item.inputs["attention_mask"]
        word_rows = item.display["word_matrix"].to(ids.device)  # [words, tokens]
        removed = torch.as_tensor(~keep, dtype=torch.float32, device=ids.device) @ word_rows  # [variants, tokens]
        variants = torch.where(removed > 0, torch.full_like(removed, self.pad_id, dtype=ids.dtype),
                               ids.expand(len(keep), -1))
        return batched_scores(lambda v: self._output(model, v, mask.expand(v.shape[0], -1), item), variants)

    def item_record(self, item: Item, attribution: Attribution) -> dict[str, Any]:
        extra = {k: item.display[k] for k in ("span", "type") if k in item.display}
        return super().item_record(item, attribution) | extra

    def visuals(self, items: list[Item], attributions: list[Attribution], out: Any) -> list[dict[str, Any]]:
        """Token highlights: words with their normalised attributions (the report colours them)."""
        shown = []
        for item, attribution in list(zip(items, attributions, strict=True))[:self.settings.visuals]:
            weights = normalised(attribution.units)
            shown.append({"kind": "tokens", "id": item.id, "label": item.label,
                          "tokens": [{"text": w, "weight": round(float(v), 4),
                                      "in_target": "span" in item.display
                                      and item.display["span"][0] <= i < item.display["span"][1]}
                                     for i, (w, v) in enumerate(zip(item.units, weights, strict=True))]})
        return shown


def _top_words(pairs: list[tuple[str, float]]) -> list[dict[str, Any]]:
    """Words ranked by their summed normalised attribution over the items (frequent and strong first)."""
    total: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for word, value in pairs:
        key = word.lower()
        total[key] += value
        count[key] += 1
    ranked = sorted(total, key=lambda w: -total[w])[:TOP_WORDS]
    return [{"word": w, "total": round(total[w], 4), "mean": round(total[w] / count[w], 4), "count": count[w]}
            for w in ranked if total[w] > 0]


class SentenceClassificationExplainer(TextExplainer):
    """Sequence classification: the predicted class of each sampled sentence."""

    def items(self, model: Any, examples: list[Any]) -> list[Item]:
        labels = list(self.task.label_names)
        items = []
        for example in examples:
            inputs, word_ids, words = self._encode(example.input)
            if not words:
                continue
            with torch.no_grad():
                probs = model.logits(inputs).float().softmax(-1)[0]
            target = int(probs.argmax())
            items.append(Item(example.id, target, labels[target], inputs, words,
                              {"word_matrix": self._word_matrix(word_ids, len(words)), "group": labels[target],
                               "reference": example.target}))
        return items

    def summarise(self, items: list[Item], attributions: list[Attribution]) -> dict[str, Any]:
        groups: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for item, attribution in zip(items, attributions, strict=True):
            groups[item.label].extend(zip(item.units, normalised(attribution.units).tolist(), strict=True))
        return {"kind": "top_words", "by": "predicted class",
                "groups": {label: {"items": sum(1 for i in items if i.label == label), "top_words": _top_words(pairs)}
                           for label, pairs in sorted(groups.items())}}


class EntityExplainer(TextExplainer):
    """NER: each predicted entity of the sampled sentences; the explained output is the mean probability of
    the entity's predicted tags over its words (first sub-word of each, as the model predicts them)."""

    target = "each predicted entity (mean probability of its predicted tags)"

    def candidates(self, rows: list[Example],
                   stored_predictions: Callable[[], Iterable[dict[str, Any]]]) -> list[Example]:
        """Only sentences where the run predicted at least one entity (its stored predictions): a sentence
        without one has nothing to explain."""
        with_entities = {p["id"] for p in stored_predictions() if iob2_entities(p["pred"])}
        return [r for r in rows if r.id in with_entities]

    def items(self, model: Any, examples: list[Any]) -> list[Item]:
        labels = list(self.task.label_names)
        items: list[Item] = []
        for example in examples:
            inputs, word_ids, words = self._encode(example.input)
            if not words:
                continue
            first = {}
            for position, word in enumerate(word_ids):
                if word is not None and word not in first:
                    first[word] = position
            with torch.no_grad():
                predicted = model.logits(inputs).argmax(-1)[0].cpu()
            tags = [labels[int(predicted[first[w]])] if w in first else "O" for w in range(len(words))]
            matrix = self._word_matrix(word_ids, len(words))
            for start, end, kind in sorted(iob2_entities(tags)):
                positions = [first[w] for w in range(start, end)]
                tag_ids = [labels.index(tags[w]) for w in range(start, end)]
                text = " ".join(words[start:end])
                items.append(Item(f"{example.id}#{start}-{end}", -1, f"{kind} '{text}'", inputs, words,
                                  {"word_matrix": matrix, "span": [start, end], "type": kind, "group": kind,
                                   "positions": positions, "tags": tag_ids}))
                if len(items) >= self.settings.examples:
                    return items
        return items

    def _output(self, model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, item: Item) -> torch.Tensor:
        probs = model.logits({"input_ids": input_ids, "attention_mask": attention_mask}).float().softmax(-1)
        positions = torch.tensor(item.display["positions"], device=probs.device)
        tags = torch.tensor(item.display["tags"], device=probs.device)
        return probs[:, positions, tags].mean(-1)

    def summarise(self, items: list[Item], attributions: list[Attribution]) -> dict[str, Any]:
        inside: dict[str, list[tuple[str, float]]] = defaultdict(list)
        context: dict[str, list[tuple[str, float]]] = defaultdict(list)
        share: dict[str, list[float]] = defaultdict(list)
        for item, attribution in zip(items, attributions, strict=True):
            start, end = item.display["span"]
            weights = normalised(attribution.units)
            kind = item.display["type"]
            for i, (word, value) in enumerate(zip(item.units, weights.tolist(), strict=True)):
                (inside if start <= i < end else context)[kind].append((word, value))
            share[kind].append(float(np.abs(weights[start:end]).sum()))
        return {"kind": "top_words", "by": "entity type",
                "groups": {kind: {"items": len(share[kind]), "entity_share": round(float(np.mean(share[kind])), 4),
                                  "top_words": _top_words(inside[kind]), "top_context_words": _top_words(context[kind])}
                           for kind in sorted(share)}}
