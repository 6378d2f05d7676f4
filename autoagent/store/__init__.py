"""What outlives a process: a run's journal and checkpoint, the vector memory, its embedders,
locks."""
