"""Kernels of PASER selection: numpy arrays and Arrow tables in and out, no engine (clustering, budget and
ranking, concepts, degradation scores, embeddings)."""
