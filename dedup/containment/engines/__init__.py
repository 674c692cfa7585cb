"""Engine plans of the R2D2 content check (step 3): Polars (embedded) and Spark."""
