"""Long values shortened on screen, whole one click away and on paper."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET

import pytest

from central.web.long_values import hashes_shortened, long_value

pytestmark = pytest.mark.sqlite_only  # no database: a run on each would only repeat it

DIGEST = hashlib.sha256(b"footage").hexdigest()


def test_a_hash_shows_its_first_digits_and_opens_to_the_whole_value():
    shown = ET.fromstring(str(long_value(DIGEST)))
    summary = shown.find("details/summary/code")
    assert summary is not None and summary.text == DIGEST[:12] + "…" and summary.get("title") == DIGEST
    assert shown.find("details/code[@class='whole']").text == DIGEST
    assert shown.find("code[@class='print-whole']").text == DIGEST


def test_a_short_value_or_none_is_shown_as_it_is():
    assert str(long_value("BWV-000001")) == "<code>BWV-000001</code>"
    assert str(long_value(None)) == "-"


def test_hashes_in_free_text_are_shortened_and_the_rest_escaped():
    text = f"copied from camera <BWV-1>, 64000 bytes, sha256 {DIGEST}; ok"
    shown = str(hashes_shortened(text))
    assert shown.startswith('copied from camera &lt;BWV-1&gt;, 64000 bytes, sha256 <span class="long">')
    assert shown.endswith("</span>; ok") and shown.count(DIGEST) == 3
    assert str(hashes_shortened("retention rules v3, 20260101")) == "retention rules v3, 20260101"
    assert str(hashes_shortened(None)) == ""


def test_a_hostile_long_value_stays_text_in_the_title_the_summary_and_the_whole():
    """A long value is not always a digest a program wrote (an id a station sent): its quotes cannot
    end the tooltip's attribute, and its cut never splits an escape into markup."""
    hostile = '"><img src=x onerror=alert(1)>&' + "a" * 40
    parsed = ET.fromstring(str(long_value(hostile)))  # well-formed: every attribute closed where it should be
    assert [e.tag for e in parsed.iter()] == ["span", "details", "summary", "code", "code", "code"]
    assert parsed.find("details/summary/code").get("title") == hostile
    assert parsed.find("details/summary/code").text == hostile[:12] + "…"
    assert parsed.find("details/code[@class='whole']").text == hostile


def test_free_text_is_escaped_as_the_templates_escape_it():
    """One escaping on a page: an apostrophe in an audit detail reads the same whether or not the
    detail holds a hash (the sergeant's override reason, searched for as the page shows it)."""
    from markupsafe import escape

    reason = 'officer\'s own camera <in repair> & "spare"'
    assert str(hashes_shortened(reason)) == str(escape(reason))
