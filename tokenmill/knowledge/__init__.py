"""Vector stores: extraction, chunking, keyword terms, fusion and filters (the pure core);
the repository, indexing (a work-queue handler) and hybrid retrieval over the database."""
