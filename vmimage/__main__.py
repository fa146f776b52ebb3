"""``python -m vmimage``: the ``hepstream image`` commands on their own."""

from __future__ import annotations

import sys

from vmimage.cli import main

if __name__ == "__main__":
    sys.exit(main())
