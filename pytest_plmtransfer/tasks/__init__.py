"""FLIP tasks: catalog, readers, data resolution and per-model preparation."""
