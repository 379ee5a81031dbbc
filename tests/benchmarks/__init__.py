"""Tests of the benchmarks package (a package, like the other test folders, so basenames never clash)."""
