"""``python -m sealstore.client``: same as the ``sealstore-client`` console script."""

from sealstore.client.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
