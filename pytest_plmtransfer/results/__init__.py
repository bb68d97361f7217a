"""Records, the ledger, result frames, the embedding store, result cache, predictions, merge."""
