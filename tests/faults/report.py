"""Turn the fault suite's JSON lines into the table quoted in BENCHMARKS.md.

    python -m tests.faults.report bench/out/faults.jsonl
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import Counter
from pathlib import Path

from tests.faults.checker import OUTCOMES


def render(lines: list[dict]) -> str:
    clips, docks, kinds, refused = Counter(), Counter(), Counter(), Counter()
    for line in lines:
        clips.update(line["clips"])
        docks.update(line["docks"])
        kinds.update(line["kinds"])
        refused.update(line.get("refused", {}))
    invalid = [line["seed"] for line in lines if not line["valid"]]
    seconds = [line["seconds"] for line in lines]
    columns = (*OUTCOMES, "unexpected")
    out = [f"{len(lines)} seeded scenarios, {len(invalid)} invalid{': seeds ' + str(invalid) if invalid else ''}; "
           f"median {statistics.median(seconds):.0f} s a scenario (max {max(seconds):.0f} s).", "",
           "| items | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for name, counts in (("clips", clips), ("dock telemetry", docks)):
        out.append(f"| {name} | " + " | ".join(f"{counts[c]:,}" for c in columns) + " |")
    out += ["", "| fault kind | scenarios |", "|---|---:|"]
    out += [f"| {kind} | {count} |" for kind, count in sorted(kinds.items())]
    out += ["", f"Central refused {refused['503']:,} requests with 503 and {refused['429']:,} with 429 "
            "(each with Retry-After) across the runs."]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "bench/out/faults.jsonl")
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        print(f"no results in {path}", file=sys.stderr)
        return 1
    table = render(lines)
    print(table)
    path.with_suffix(".md").write_text(table + "\n")
    return 0 if all(line["valid"] for line in lines) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
