"""The top entries of a py-spy raw profile (``py-spy record -f raw``, collapsed stacks).

    scripts/profile_top.py FILE [--top 25] [--thread NAME]

Prints, for the samples (of the thread whose name contains NAME, with ``--threads`` stacks):
the functions by self time (the innermost frame) and by total time (anywhere in the stack),
each as a share of the samples. A frame is ``function (file:line)``; the line is left out so
that one function is one entry.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def _frame(text: str) -> str:
    match = _FRAME.match(text)
    if match is None:
        return text
    path = match["file"]
    short = "/".join(path.split("/")[-2:])
    return f"{match['name']} ({short})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--thread", default=None, help="only stacks whose first frame has this")
    args = parser.parse_args()
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    samples = 0
    for line in args.file.read_text().splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        frames = match["stack"].split(";")
        count = int(match["count"])
        if frames and frames[0].startswith(("thread ", "process ")):
            head = [f for f in frames if f.startswith(("thread ", "process "))]
            threads[head[-1]] += count
            if args.thread and not any(args.thread in f for f in head):
                continue
            frames = [f for f in frames if not f.startswith(("thread ", "process "))]
        if not frames:
            continue
        samples += count
        named = [_frame(f) for f in frames]
        own[named[-1]] += count
        for name in set(named):
            total[name] += count
    print(f"{samples} samples")
    for thread, count in threads.most_common():
        print(f"  {count:6d}  {thread}")
    for title, table in (("self", own), ("total", total)):
        print(f"\nby {title} time:")
        for name, count in table.most_common(args.top):
            print(f"  {100 * count / max(1, samples):5.1f} %  {name}")


if __name__ == "__main__":
    main()
