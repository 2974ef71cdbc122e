"""harness: a multimodal task-suite benchmark harness.

Importing this package is cheap: no torch, no task module, no download. The heavy parts load on use.
"""

__version__ = "0.2.0"
