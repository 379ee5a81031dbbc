"""``python -m benchmarks.zoo``: run the zoo and print its table (see :mod:`benchmarks.zoo`)."""

from benchmarks.zoo import main

if __name__ == "__main__":
    raise SystemExit(main())
