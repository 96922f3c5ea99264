"""Datasets: the in-memory hand sample, the RAM-H1200 reader/writer and the synthetic phantom generator."""
from .sample import HandSample

__all__ = ["HandSample"]
