"""Tests of fitwatch.detect (a package, so that test modules here may share basenames with other test folders)."""
