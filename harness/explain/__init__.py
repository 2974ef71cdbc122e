"""Explanations of trained runs: attributions per modality (captum), faithfulness numbers, summaries.

    from harness import api
    block = api.explain("ner-minilm-full-quick-s0-...")
"""
