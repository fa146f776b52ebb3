"""Job queues the cloud shim watches: local, in-memory (simulation), HTCondor and Slurm, all
behind one interface (:class:`~hepstream.cloud.queues.base.Queue`)."""

from hepstream.cloud.queues.base import AgentQueue, Queue, QueuedJob

__all__ = ["AgentQueue", "Queue", "QueuedJob"]
