"""`python ml_server.py` serves the model in this folder; the logic lives in model_server."""
import pathlib
import sys

from model_server.cli import main

sys.exit(main(["--model-dir", str(pathlib.Path(__file__).resolve().parent), *sys.argv[1:]]))
