"""Turn the fault suite's JSON lines into the table quoted in BENCHMARKS.md and docs/benchmarks-history.md.

    python -m tests.faults.report bench/out/faults.jsonl [SEEDS]

With SEEDS (the run's --fault-seeds), seeds 0..SEEDS-1 that left no line (the scenario
itself failed: a fault that never fired, a process that would not start) are listed too.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import Counter
from pathlib import Path

from tests.faults.checker import OUTCOMES


def render(lines: list[dict], seeds: int | None = None) -> str:
    clips: Counter[str] = Counter()
    docks: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    for line in lines:
        clips.update(line["clips"])
        docks.update(line["docks"])
        kinds.update(line["kinds"])
        refused.update(line.get("refused", {}))
    invalid = [line["seed"] for line in lines if not line["valid"]]
    seconds = [line["seconds"] for line in lines]
    columns = (*OUTCOMES, "unexpected")
    missing = sorted(set(range(seeds)) - {line["seed"] for line in lines}) if seeds else []
    out = [
        f"{len(lines)} seeded scenarios checked, {len(invalid)} invalid{': seeds ' + str(invalid) if invalid else ''}"
        f"{f'; {len(missing)} of {seeds} failed before the check: seeds {missing}' if missing else ''}; "
        f"median {statistics.median(seconds):.0f} s a scenario (max {max(seconds):.0f} s).",
        "",
        "| items | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name, counts in (("clips", clips), ("dock telemetry", docks)):
        out.append(f"| {name} | " + " | ".join(f"{counts[c]:,}" for c in columns) + " |")
    out += ["", "| fault kind | scenarios |", "|---|---:|"]
    out += [f"| {kind} | {count} |" for kind, count in sorted(kinds.items())]
    out += [
        "",
        f"Central refused {refused['503']:,} requests with 503 and {refused['429']:,} with 429 "
        "(each with Retry-After) across the runs.",
    ]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "bench/out/faults.jsonl")
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        print(f"no results in {path}", file=sys.stderr)
        return 1
    seeds = int(argv[1]) if len(argv) > 1 else None
    table = render(lines, seeds)
    print(table)
    path.with_suffix(".md").write_text(table + "\n")
    complete = seeds is None or len({line["seed"] for line in lines}) == seeds
    return 0 if complete and all(line["valid"] for line in lines) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
