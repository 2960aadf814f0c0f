"""Apps: versioned bundles of a model, instructions, knowledge and tools, called by id."""
