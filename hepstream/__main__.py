import sys

from hepstream.cli import main

sys.exit(main())
