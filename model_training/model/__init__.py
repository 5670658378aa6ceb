"""The segmentation model: features, the estimator, selection, naming, artifact, retraining.

scikit-learn, numpy and pandas, no files except the artifact's own (``artifact``). It may
import :mod:`model_training.data` and the fitting and card modules of the pipeline
(``refit`` retrains with them); it never imports ``cli`` or anything of ``stream_app``.
"""
