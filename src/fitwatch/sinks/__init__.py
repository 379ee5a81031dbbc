"""Sinks: where findings and scalars go (TensorBoard, Python warnings and logging, findings.jsonl).

Sinks never decide anything and never crash training: a sink that fails warns once and is disabled.
"""
