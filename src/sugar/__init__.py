"""SUGAR-AR: skeleton action recognition with a language model (SUGAR, AAAI 2026)."""

__version__ = "0.1.0"
