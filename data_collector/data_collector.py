"""Seed entry: `python data_collector.py URL [URL ...]` == `data-collector collect URL [URL ...]`."""

import sys

from collector.cli import main

if __name__ == "__main__":
    sys.exit(main(["collect", *sys.argv[1:]], prog_name="data_collector.py"))
