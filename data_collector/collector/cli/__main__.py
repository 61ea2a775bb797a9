"""`python -m collector.cli ...` == `data-collector ...`."""

import sys

from . import main

sys.exit(main(prog_name="data-collector"))
