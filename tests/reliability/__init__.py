"""Reliability: distributed training, resume, bad input and faults, and zero observer effect."""
