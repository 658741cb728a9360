"""Retention rules: the longest category wins, the clock starts at recording, unknown means keep."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from central.evidence.retention_rules import (
    assessment,
    categories_of,
    load_retention,
    period_end,
    retain_until,
    rules_from_dict,
    shortened,
)
from fleet.errors import ConfigError

RULES = load_retention(Path(__file__).resolve().parents[3] / "config" / "retention.toml")
NAMES = sorted(RULES.categories)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


def test_the_reference_rules():
    recorded = datetime(2016, 2, 29, 14, 0, tzinfo=UTC)
    assert retain_until(RULES, recorded, []) == recorded + timedelta(days=31)
    assert retain_until(RULES, recorded, ["stop_and_search"]) == datetime(2017, 2, 28, 14, 0, tzinfo=UTC)
    assert retain_until(RULES, recorded, ["stop_and_search", "use_of_force"]) == datetime(
        2022, 2, 28, 14, 0, tzinfo=UTC
    )
    assert categories_of(RULES, ["traffic", "use_of_force"], evidential=True) == ["evidential", "use_of_force"]
    assert categories_of(RULES, ["traffic"], evidential=False) == []
    assert RULES.recovery_days == 7


@given(moments, st.lists(st.sampled_from(NAMES), max_size=4))
def test_a_clip_in_several_categories_keeps_the_longest(recorded, names):
    until = retain_until(RULES, recorded, names)
    assert until == max([period_end(RULES, n, recorded) for n in names] or [period_end(RULES, None, recorded)])
    for extra in NAMES:  # adding a category never shortens retention
        assert retain_until(RULES, recorded, [*names, extra]) >= until
    assert until > recorded  # the clock starts at recording


@given(moments, st.text(min_size=1, max_size=10))
def test_an_unknown_category_keeps_the_clip_as_long_as_anything(recorded, name):
    if name in RULES.categories:
        return
    longest = max(period_end(RULES, n, recorded) for n in NAMES)
    assert retain_until(RULES, recorded, [name]) >= longest


def test_shortening_is_detected():
    base = {"default_days": 31, "categories": {"evidential": {"years": 6}, "use_of_force": {"years": 6}}}
    old = rules_from_dict(base)
    assert shortened(old, rules_from_dict(base)) == []
    assert shortened(old, rules_from_dict({**base, "default_days": 30})) == ["default"]
    assert shortened(
        old, rules_from_dict({**base, "categories": {"evidential": {"years": 6}, "use_of_force": {"days": 400}}})
    ) == ["use_of_force"]
    assert shortened(old, rules_from_dict({**base, "categories": {"evidential": {"years": 6}}})) == ["use_of_force"]
    assert shortened(old, rules_from_dict({**base, "default_days": 90})) == []


def test_a_reviewed_category_that_decides_the_end_calls_for_review():
    rules = rules_from_dict(
        {
            "categories": {
                "evidential": {"years": 6, "review": True},
                "stop_and_search": {"years": 1},
                "short_review": {"days": 10, "review": True},
            }
        }
    )
    recorded = datetime(2026, 1, 1, tzinfo=UTC)
    assert assessment(rules, recorded, []) == (recorded + timedelta(days=31), False)
    assert assessment(rules, recorded, ["stop_and_search"])[1] is False
    assert assessment(rules, recorded, ["evidential", "stop_and_search"]) == (datetime(2032, 1, 1, tzinfo=UTC), True)
    # A reviewed category that is not the longest does not decide: the longer one ends it.
    assert assessment(rules, recorded, ["short_review", "stop_and_search"])[1] is False
    assert assessment(rules, recorded, ["renamed_category"])[1] is True  # unknown: longest, reviewed


def test_dropping_a_review_counts_as_shortening():
    base = {"categories": {"evidential": {"years": 6, "review": True}}}
    assert shortened(rules_from_dict(base), rules_from_dict({"categories": {"evidential": {"years": 6}}})) == [
        "evidential (review)"
    ]
    assert shortened(rules_from_dict({"categories": {"evidential": {"years": 6}}}), rules_from_dict(base)) == []


def test_bad_rules_are_one_clear_line():
    with pytest.raises(ConfigError, match="exactly one of days or years"):
        rules_from_dict({"categories": {"evidential": {"days": 3, "years": 1}}})
    with pytest.raises(ConfigError, match="evidential_category"):
        rules_from_dict({"categories": {"other": {"days": 3}}})
    with pytest.raises(ConfigError, match="unknown field"):
        rules_from_dict({"default_dayz": 3, "categories": {"evidential": {"days": 3}}})
