"""Claims and baselines: what a run is judged against."""
