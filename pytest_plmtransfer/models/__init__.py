"""Model adapters: every PLM (and the one-hot baseline) behind one small interface."""

from pytest_plmtransfer.models.base import EmbeddingBatch, ModelAdapter

__all__ = ["EmbeddingBatch", "ModelAdapter"]
