"""``python -m bench``: the same command as ``hepstream bench run``."""

import sys

from hepstream.cli import main

sys.exit(main(["bench", "run", *sys.argv[1:]], prog_name="hepstream"))
