"""Whether a worker is ready for traffic: the answer of ``GET /ready``, decided from facts.

The worker gathers the facts (partitions assigned, a Redis PING, the model state); this module
only decides, so that the rule is tested without servers.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Readiness", "readiness"]


@dataclass(frozen=True, slots=True)
class Readiness:
    """The readiness answer: ready or not, and why not."""

    ready: bool
    reason: str = ""

    @property
    def status(self) -> int:
        """The HTTP status of ``/ready``: 200 or 503."""
        return 200 if self.ready else 503

    def body(self) -> dict[str, object]:
        """The JSON body of ``/ready``."""
        return {"ready": True} if self.ready else {"ready": False, "reason": self.reason}


def readiness(
    *,
    started: bool,
    partitions: int,
    redis_problem: str | None,
    model_known: bool,
    model_problem: str | None = None,
) -> Readiness:
    """Decide readiness: started, partitions assigned, Redis answering, model state known.

    The model state is known when a model is served or when the registry says none is
    trained yet (the worker then keeps RFM state current and segments come with the first
    model): a worker is not held back for want of a model, only for not knowing.

    >>> readiness(started=True, partitions=2, redis_problem=None, model_known=True)
    Readiness(ready=True, reason='')
    >>> readiness(started=True, partitions=2, redis_problem="timed out", model_known=True).reason
    'Redis does not answer: timed out'
    """
    if not started:
        return Readiness(False, "starting up")
    if redis_problem is not None:
        return Readiness(False, f"Redis does not answer: {redis_problem}")
    if partitions == 0:
        return Readiness(False, "no partition of the orders topic is assigned")
    if not model_known:
        why = f": {model_problem}" if model_problem else ""
        return Readiness(False, f"the model state is not known{why}")
    return Readiness(True)
