"""Engine plans of the sampling stage: the Spark draw (spark.py); the Polars draw is sampling/draw.py."""
