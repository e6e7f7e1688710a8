"""``python -m gradcheck`` runs the command line."""

import sys

from gradcheck.cli import main

if __name__ == "__main__":
    sys.exit(main())
