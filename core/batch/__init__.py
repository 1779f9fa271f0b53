"""Batch scoring with the versions the server serves: files on one machine (score), and the
pinned, once-per-process loads Dask and Spark workers share (pinned, answers)."""
