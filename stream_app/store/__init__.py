"""Adapters for state: Redis (client, key formats, Lua scripts), in memory, the model registry.

``redis_store`` and its ``lua/`` scripts keep every customer's state in Redis; ``memory`` is
the in-memory store with the same contract, for tests; ``keys`` spells every Redis key;
``registry`` keeps model versions on disk and the current-version pointer and the retraining
coordination keys in Redis. It may import :mod:`stream_app.core`, :mod:`model_training`'s model
artifact and redis-py; it never imports faust or the service layer.
"""
