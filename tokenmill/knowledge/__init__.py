"""Vector stores: extraction, chunking, result fusion and attribute filters (the pure core)."""
