"""``python -m cryoframe``: the same as the ``cryoframe`` console script."""

import sys

from cryoframe.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
