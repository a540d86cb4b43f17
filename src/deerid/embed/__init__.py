"""Crop → vector: backbones, their weights, the deterministic head and the Embedder."""
