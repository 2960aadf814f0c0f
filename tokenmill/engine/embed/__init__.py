"""The embedding replica: one sentence-transformers model served as ``/v1/embeddings``."""
