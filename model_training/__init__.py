"""Batch pipeline: clean transactions, compute RFM, build and explain the segmentation model."""
