"""Figures drawn with matplotlib (Agg backend), one module per family."""
