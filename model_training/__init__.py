"""Batch pipeline: clean transactions, compute RFM, build and explain the segmentation model.

``data`` (transactions to RFM), ``model`` (the estimator and its artifact), ``fitting`` and
``card`` (the model step), ``pipeline`` and ``report`` (``rfm train``'s outputs), ``cli``.
Nothing here imports :mod:`stream_app`.
"""
