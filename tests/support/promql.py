"""Just enough PromQL reading for the tests of deploy/: which metrics an expression names."""

from __future__ import annotations

import re

KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
)
BUILT_IN = frozenset({"up", "scrape_duration_seconds"})
"""Series Prometheus makes itself for every target."""
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def metric_names(expr: str) -> set[str]:
    """The metric names in ``expr``: identifiers that are not functions, keywords, labels or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values) say nothing
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        name, rest = match.group(), text[match.end() :].lstrip()
        if name in KEYWORDS or rest.startswith("("):
            continue
        names.add(name)
    return names


def check_balanced(expr: str) -> None:
    depth = 0
    for char in re.sub(r'"(?:[^"\\]|\\.)*"', "", expr):
        depth += {"(": 1, ")": -1, "{": 1, "}": -1, "[": 1, "]": -1}.get(char, 0)
        assert depth >= 0, f"a bracket closes before it opens: {expr}"
    assert depth == 0, f"unbalanced brackets: {expr}"


def exposed_names(exposition: str) -> set[str]:
    """Every series name a scrape can hold, from its ``# TYPE`` lines (also of families with no sample)."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()[:4]
            names.add(name)
            if kind in ("histogram", "summary"):
                names.update(name + suffix for suffix in HISTOGRAM_SUFFIXES)
    return names


def samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by (name, sorted labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
    }


def scraped(response) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``samples`` of a ``/metrics`` answer, checked to be one in the text format every Prometheus reads."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return samples(response.text)
