"""Loaded versions in one serving process: slots and snapshots, loading, hot swap on a change
of the store, micro-batching on the model's worker threads, the fleet's heartbeats."""
