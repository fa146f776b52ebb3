"""Job queues the cloud shim watches: local, in-memory (simulation), HTCondor and Slurm."""
