"""`python -m monitor` is the same program as the `monitor` console script."""

from monitor.cli import main

if __name__ == "__main__":  # guarded: parser worker processes import the main module
    raise SystemExit(main())
