"""bntui: run and compare batch-normalization experiments in PyTorch, from a terminal."""

__version__ = "0.1.0"
