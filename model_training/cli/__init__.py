"""The batch commands ``rfm train`` and ``rfm synth``, thin over the pipeline.

They may import every part of :mod:`model_training`; the ``rfm`` command line of
:mod:`stream_app.cli` mounts them.
"""
