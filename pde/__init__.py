"""PDE surrogates (FactFormer, PDE-Transformer): arrives with its own issue."""
