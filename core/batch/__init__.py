"""Batch scoring with the versions the server serves: files on one machine (score), and the
pinned, once-per-process loads Dask and Spark workers share (pinned, answers).

The constants the CLI and ``Store.score`` need live here, so neither imports pyarrow
before a job runs (every CLI command builds the ``score`` parser, ``serve`` included)."""

BATCH_METHODS = ("predict", "predict_proba", "decision_function")
DEFAULT_CHUNK_ROWS = 65_536  # rows read, checked and scored at a time
