"""``python -m keraslint`` is the same program as ``keraslint``."""

import sys

from keraslint.cli import main

if __name__ == "__main__":
    sys.exit(main())
