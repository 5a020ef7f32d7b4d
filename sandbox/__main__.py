import argparse
import logging

from .server import serve

parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, default=8100)
parser.add_argument(
    "--callback-delay", type=float, default=0.5, help="seconds before a later decision is sent"
)
args = parser.parse_args()
logging.basicConfig(level=logging.INFO, format="%(asctime)s sandbox %(levelname)s %(message)s")
serve(args.host, args.port, callback_delay=args.callback_delay)
