"""Developer tooling, apart from the runtime: the local stack and the demo.

``servers`` launches a Tansu broker or a redis-server (the one launcher the local stack and
the tests use), ``processes`` inspects and stops them, ``network`` finds free ports and probes
them, ``record`` is the stack's ``stack.json``, ``stack`` starts, reports and stops a whole
stack, and ``demo`` runs the story end to end. It may import every layer of the service and
``model_training``; nothing in ``core``, ``service``, ``store`` or ``kafka`` imports it (only the
``rfm stack`` and ``rfm demo`` commands do).
"""
