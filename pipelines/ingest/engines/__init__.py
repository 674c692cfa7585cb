"""Ingest's engine plans: polars.py (embedded) and spark.py (cluster)."""
