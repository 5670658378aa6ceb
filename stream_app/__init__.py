"""Stream processor: order events in, per-customer RFM in Redis, segment changes out.

Layers, each importing only those before it: ``core`` (pure), ``service`` (coordination),
the adapters ``store`` and ``kafka``, then ``cli``; ``devtools`` (local stack, demo) stands
apart from the runtime. ``settings`` and ``exceptions`` serve every layer but the core.
"""
