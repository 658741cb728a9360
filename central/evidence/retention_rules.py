"""Retention rules: how long a clip is kept, from when it was recorded.

Categories come from the camera (its sidecar tags and evidential flag) and later from
authorised users at central. A clip in several categories keeps the longest period; a clip
in none gets ``default_days`` (31: footage not marked evidential). The clock starts at
``recorded_at``, never at upload. Years are calendar years (29 February + 1 year is
28 February). Pure functions: central's retention job and the tests share them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta, Struct

from fleet.config import read_toml
from fleet.errors import ConfigError

CategoryName = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_]*$(?!\n)")]


class Category(Struct, kw_only=True, forbid_unknown_fields=True):
    days: Annotated[int, Meta(ge=1, le=365_250)] | None = None
    years: Annotated[int, Meta(ge=1, le=1000)] | None = None
    review: bool = False
    """Kept for the period, then reviewed rather than deleted unseen (MoPI)."""
    description: str = ""


class RetentionRules(Struct, kw_only=True, forbid_unknown_fields=True):
    default_days: Annotated[int, Meta(ge=1, le=36_500)] = 31
    recovery_days: Annotated[int, Meta(ge=0, le=365)] = 7
    """A soft-deleted clip can be restored for this long; then its bytes are purged."""
    evidential_category: CategoryName = "evidential"
    categories: dict[CategoryName, Category] = msgspec.field(
        default_factory=lambda: {"evidential": Category(years=6, review=True)}
    )


def rules_from_dict(raw: dict, where: str = "retention rules") -> RetentionRules:
    try:
        rules = msgspec.convert(raw, RetentionRules)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    for name, category in rules.categories.items():
        if (category.days is None) == (category.years is None):
            raise ConfigError(f"{where}: [categories.{name}] needs exactly one of days or years")
    if rules.evidential_category not in rules.categories:
        raise ConfigError(f"{where}: evidential_category {rules.evidential_category!r} is not one of the categories")
    return rules


def load_retention(path: str | Path) -> RetentionRules:
    return rules_from_dict(read_toml(path, "retention rules file"), str(path))


def categories_of(rules: RetentionRules, tags: Iterable[str], evidential: bool) -> list[str]:
    """The retention categories a clip is in: tags that name one, and the evidential flag."""
    found = {tag for tag in tags if tag in rules.categories}
    if evidential:
        found.add(rules.evidential_category)
    return sorted(found)


def _add_years(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February in a year without one
        return moment.replace(year=moment.year + years, day=28)


def period_end(rules: RetentionRules, category: str | None, recorded_at: datetime) -> datetime:
    """When one category's (or the default's, for None) period ends for a clip recorded then."""
    if category is None:
        try:
            return recorded_at + timedelta(days=rules.default_days)
        except OverflowError:
            return datetime.max.replace(tzinfo=recorded_at.tzinfo)
    spec = rules.categories[category]
    try:
        if spec.days is not None:
            return recorded_at + timedelta(days=spec.days)
        assert spec.years is not None, "rules_from_dict lets a category through only with days or years"
        return _add_years(recorded_at, spec.years)
    except (ValueError, OverflowError):  # beyond year 9999: kept for ever
        return datetime.max.replace(tzinfo=recorded_at.tzinfo)


def retain_until(rules: RetentionRules, recorded_at: datetime, categories: Iterable[str]) -> datetime:
    """The end of retention: the longest of the clip's categories, or the default when it has none."""
    return assessment(rules, recorded_at, categories)[0]


def assessment(rules: RetentionRules, recorded_at: datetime, categories: Iterable[str]) -> tuple[datetime, bool]:
    """(end of retention, whether that end calls for a review rather than deletion).

    The longest category decides; if any category reaching that end is reviewed (MoPI), the
    clip is put before a reviewer when its period ends, never deleted unseen. A category the
    rules do not know (renamed, removed) keeps the clip for the longest period the rules know,
    with review, so a configuration mistake never deletes footage early."""
    names = list(categories)
    if not names:
        return period_end(rules, None, recorded_at), False
    longest = max(
        [period_end(rules, c, recorded_at) for c in rules.categories] + [period_end(rules, None, recorded_at)]
    )
    ends = [
        (period_end(rules, name, recorded_at), rules.categories[name].review)
        if name in rules.categories
        else (longest, True)
        for name in names
    ]
    end = max(e for e, _ in ends)
    return end, any(review for e, review in ends if e == end)


def shortened(old: RetentionRules, new: RetentionRules) -> list[str]:
    """What the new rules make shorter or remove: such a change must first show how many clips it
    would delete, and be confirmed. Periods are compared on several dates (leap years)."""
    probes = [datetime(2000, 1, 1), datetime(2000, 2, 29), datetime(2001, 3, 1)]
    changed = ["default"] if new.default_days < old.default_days else []
    if new.recovery_days < old.recovery_days:
        changed.append("recovery_days")
    for name in old.categories:
        if name not in new.categories or any(period_end(new, name, p) < period_end(old, name, p) for p in probes):
            changed.append(name)
        elif old.categories[name].review and not new.categories[name].review:
            changed.append(f"{name} (review)")  # deleted unseen where a reviewer decided before
    if any(
        period_end(new, new.evidential_category if new.evidential_category in new.categories else None, p)
        < period_end(old, old.evidential_category, p)
        for p in probes
    ):
        changed.append("evidential_category")
    return changed
