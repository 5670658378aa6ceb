"""The pure core of the stream: event contracts, order effects, customer state, scoring.

Everything here is arithmetic and validation on values: no faust, no Redis, no joblib, no
clock of its own (``now`` is always an argument). It may import the standard library, numpy,
pydantic and the RFM rules shared with the batch pipeline (:mod:`model_training.data.rules`);
every other layer of ``stream_app`` may import it. The one piece of I/O is
:func:`~stream_app.core.events.write_json_schemas`, which writes the schema files of
``rfm schemas``.
"""
