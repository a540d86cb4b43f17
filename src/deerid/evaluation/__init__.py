"""Measuring how well embeddings tell individuals apart."""
