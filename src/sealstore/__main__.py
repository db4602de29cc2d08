"""``python -m sealstore``: same as the ``sealstore`` console script."""

from sealstore.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
