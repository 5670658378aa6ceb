"""Adapters for Kafka: the faust worker, the publisher, and the tools that talk to the broker.

``worker`` is the faust app (agent, timers) that wires the service layer to the topics;
``publisher`` sends segment changes and dead letters through its producer; ``admin`` creates
topics and reads committed offsets; ``replay``, ``clock_events`` and ``watch`` publish a file
of orders, publish a clock event and follow the changes. It may import the service, store and
core layers and :mod:`model_training`; the command line and the developer tools import it.
"""
