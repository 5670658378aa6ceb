"""Transactions in, per-customer RFM out: loading, cleaning, the RFM rules, synthetic data.

Pandas and numpy only: no scikit-learn, no model. :mod:`~model_training.data.rules` is the
one module the stream's core imports, so batch and stream share the very same rules. It may
import :mod:`model_training.exceptions`; it imports nothing of ``model`` or ``cli``.
"""
