"""The study's loss settings, defined once: its alpha and temperature (``../shared/data/strategies.toml``), as the
distill presets, the capture's stored temperatures and the loss's defaults all use them."""

from __future__ import annotations

STUDY_ALPHA = 0.6093348343631224
STUDY_TEMPERATURE = 5.942267335064758
