"""``kdtui extract``: answer extraction over a JSON-lines file, with a summary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kdtui.cli.common import Parents, add_command
from kdtui.extract import PROTOCOLS


def cmd_extract(args: argparse.Namespace) -> int:
    from kdtui.data.extract_file import extract_file

    summary = extract_file(Path(args.input), Path(args.out) if args.out else None, args.protocol, args.field)
    # The summary goes to stderr so that stdout can carry the JSON lines.
    for line in summary.lines():
        print(line, file=sys.stderr)
    return 0


def register(sub: Any, _parents: Parents) -> None:
    extract = add_command(sub, "extract", cmd_extract, [])
    extract.add_argument("input", help="JSON lines with a response field")
    extract.add_argument("--protocol", choices=list(PROTOCOLS), default="default",
                         help="default: kdtui's cascade; study-rules (or seed): the study's four rules as described; "
                              "study: the study's code exactly, bugs included, over the file in order")
    extract.add_argument("--field", default="response", help="the field holding the response text")
    extract.add_argument("--out", help="write JSON lines here (default: stdout)")
