"""User data: parse (JSON rows, CSV, Parquet), validate against limits, store as Parquet.

Everything is checked at submission, so a job that reaches a worker has data the
upstream can take; each problem is reported with the row or column that causes it.
"""
