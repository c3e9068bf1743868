"""Decision transformers for offline RL (Decision / Agentic Transformer): arrives with its own issue."""
