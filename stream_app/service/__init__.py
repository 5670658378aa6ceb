"""The service layer: coordinates the core with the outside systems, without knowing them.

The batch processor, the in-order background work, the model the worker serves, retraining,
bootstrap and export. It works through small interfaces (the customer-state store, the
publisher, the model registry), whose Protocols are declared in ``service/ports.py``, so it
runs against the in-memory store in tests and the Redis one in production. It may import
:mod:`stream_app.core`, :mod:`model_training` and those interfaces, never faust or redis-py;
the adapters (``kafka``), the command line and the developer tools import it.
"""
