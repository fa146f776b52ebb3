"""``python -m vmimage``: the ``hepstream image`` commands on their own."""

from __future__ import annotations

import sys

from hepstream.cli import main

if __name__ == "__main__":
    sys.exit(main(["image", *sys.argv[1:]], prog_name="hepstream"))
