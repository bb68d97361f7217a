"""Running a case: model residency, task data, embeddings, probe, result cache, records."""
