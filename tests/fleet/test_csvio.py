import csv
import io
from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.csvio import read_csv, write_csv
from fleet.errors import BadRequest

Role = Literal["neighbourhood", "response", "armed", "other"]


class Officer(msgspec.Struct):
    officer_id: str
    borough: str
    team: str = ""
    role: Role = "other"
    active: bool = True


class Shift(msgspec.Struct):
    """Every scalar kind a planner's sheet carries, for the round trip."""

    name: str
    count: int
    hours: float
    on_call: bool
    starts: datetime
    role: Role = "other"
    note: str | None = None
    ends: datetime | None = None
    size: int | None = None
    ratio: float = 1.0


class Rota(msgspec.Struct):
    officer_id: Annotated[str, msgspec.Meta(min_length=1)]
    days: list[int] = []
    tags: list[str] = []


def problems(text: str, kind: type = Officer, **kwargs) -> list[str]:
    with pytest.raises(BadRequest) as refused:
        read_csv(text, kind, **kwargs)
    assert refused.value.status_code == 400
    return refused.value.message.split("\n")


# --- reading ----------------------------------------------------------------------------


def test_reads_rows_converting_cells_and_using_defaults_for_empty_ones():
    text = "officer_id,borough,team,role,active\nPC1,Camden,A,response,false\nPC2,Hackney,,,\n"
    assert read_csv(text, Officer) == [
        Officer("PC1", "Camden", "A", "response", False),
        Officer("PC2", "Hackney", "", "other", True),
    ]


def test_header_is_matched_ignoring_case_spaces_order_and_an_excel_bom():
    text = "\ufeff Borough ,OFFICER_ID,Active\r\nCamden,PC1,TRUE\r\n"
    assert text.encode("utf-8").startswith(b"\xef\xbb\xbf")
    assert read_csv(text, Officer) == [Officer("PC1", "Camden", active=True)]


def test_numbers_and_choices_tolerate_spaces_but_text_keeps_them():
    text = "officer_id,borough,role,active\n PC1 ,Camden, armed , false \n"
    assert read_csv(text, Officer) == [Officer(" PC1 ", "Camden", role="armed", active=False)]
    shift = read_csv("name,count,hours,on_call,starts\nx, 12 ,7.5,1,2024-03-01T06:00:00Z\n", Shift)[0]
    assert (shift.count, shift.hours, shift.on_call) == (12, 7.5, True)
    assert shift.starts == datetime(2024, 3, 1, 6, tzinfo=UTC)


def test_empty_optional_cells_read_as_none_and_lists_split_on_semicolons():
    shift = read_csv("name,count,hours,on_call,starts,note,size\nx,1,2,False,2024-01-01T00:00:00Z,,\n", Shift)[0]
    assert (shift.on_call, shift.note, shift.size) == (False, None, None)
    assert read_csv("officer_id,days,tags\nPC1,1;2;3,a;b\nPC2,,\n", Rota) == [
        Rota("PC1", [1, 2, 3], ["a", "b"]),
        Rota("PC2"),
    ]


def test_a_header_alone_is_no_rows_and_blank_lines_are_skipped():
    assert read_csv("officer_id,borough\n", Officer) == []
    assert read_csv("officer_id,borough\n\nPC1,Camden\n\n", Officer) == [Officer("PC1", "Camden")]


def test_an_empty_file_has_no_header():
    for text in ("", "\ufeff", "\n\n", " , \n"):
        assert problems(text) == ["line 1: a header row naming the columns is required"]


def test_unknown_missing_duplicate_and_unnamed_columns_are_all_reported():
    assert problems("officer_id,Officer_ID,rank,,team\nPC1,PC1,x,,A\n") == [
        "line 1: column 'officer_id' appears more than once",
        "line 1: unknown column 'rank'; expected officer_id, borough, team, role, active",
        "line 1: column 4 has no name",
        "line 1: missing required column 'borough'",
    ]


def test_a_bad_choice_names_its_line_column_and_the_choices():
    rows = ["PC1,Camden,response"] * 5 + ["PC7,Camden,sergeant"]
    assert problems("officer_id,borough,role\n" + "\n".join(rows) + "\n") == [
        "line 7: role: Expected `'neighbourhood' | 'response' | 'armed' | 'other'`, got `'sergeant'`",
    ]


def test_problems_on_many_lines_are_reported_together():
    text = (
        "name,count,hours,on_call,starts\n"
        "a,one,1,true,2024-01-01T00:00:00Z\n"
        "b,1,1,true,2024-01-01T00:00:00Z\n"
        "c,1,1,maybe,2024-01-01T00:00:00Z\n"
        "d,1,1,true,yesterday\n"
        "e,1,1,true\n"
        "f,,1,true,2024-01-01T00:00:00Z\n"
    )
    assert problems(text, Shift) == [
        "line 2: count: Expected `int`, got `'one'`",
        "line 4: on_call: Expected `bool`, got `'maybe'`",
        "line 5: starts: Invalid RFC3339 encoded datetime, got `'yesterday'`",
        "line 6: 4 cells but the header has 5 columns",
        "line 7: count: a value is required",
    ]


def test_a_blank_required_value_is_reported_when_the_struct_forbids_it():
    assert problems("officer_id,days\n,1\nPC2,1;x\n", Rota) == [
        "line 2: officer_id: a value is required",
        "line 3: days: Expected `int`, got `str`",
    ]


def test_line_numbers_count_physical_lines_through_quoted_newlines():
    text = 'officer_id,borough,team\nPC1,Camden,"two\nlines"\n\nPC2,Camden,A,extra\n'
    assert problems(text) == ["line 5: 4 cells but the header has 3 columns"]
    spanning = 'officer_id,borough,team\nPC1,Camden,"two\nlines",extra\nPC2,Camden,A\n'
    assert problems(spanning) == ["line 2: 4 cells but the header has 3 columns"]


def test_only_twenty_problems_are_listed_then_a_count_of_the_rest():
    text = "officer_id,borough,role\n" + "".join(f"PC{i},Camden,chief\n" for i in range(25))
    found = problems(text)
    assert len(found) == 21
    assert found[0].startswith("line 2: role:") and found[19].startswith("line 21: role:")
    assert found[20] == "and 5 more"


def test_more_rows_than_allowed_is_refused():
    text = "officer_id,borough\n" + "".join(f"PC{i},Camden\n" for i in range(4))
    assert len(read_csv(text, Officer, max_rows=4)) == 4
    assert problems(text, max_rows=3) == ["line 5: more than 3 rows; split the file"]


def test_malformed_csv_is_a_bad_request_with_its_line():
    huge = "x" * (csv.field_size_limit() + 1)
    assert problems(f"officer_id,borough\nPC1,Camden\nPC2,{huge}\n")[0].startswith("line 3: field larger")


# --- writing ----------------------------------------------------------------------------


def test_writes_header_in_declaration_order_and_cells_in_their_plain_forms():
    shift = Shift("Early", 3, 7.5, False, datetime(2024, 3, 1, 6, tzinfo=UTC))
    assert write_csv([shift], Shift).splitlines() == [
        "name,count,hours,on_call,starts,role,note,ends,size,ratio",
        "Early,3,7.5,false,2024-03-01T06:00:00.000000Z,other,,,,1.0",
    ]
    assert write_csv([Rota("PC1", [1, 2], ["a", "b c"])], Rota).splitlines()[1] == "PC1,1;2,a;b c"


def test_write_refuses_rows_of_another_kind():
    with pytest.raises(TypeError, match="got a Rota"):
        write_csv([Rota("PC1")], Officer)


@pytest.mark.parametrize("dangerous", ['=HYPERLINK("x")', "+1", "-1+2", "@SUM(A1)", "\tx", "\rx"])
def test_exported_text_that_a_spreadsheet_would_run_is_defused(dangerous):
    text = write_csv([Officer("PC1", dangerous)], Officer)
    cell = list(csv.reader(io.StringIO(text, newline="")))[1][1]
    assert cell == "'" + dangerous
    assert read_csv(text, Officer) == [Officer("PC1", dangerous)]


def test_numbers_are_not_defused_but_lists_of_text_are():
    shift = Shift("x", -3, -1.5, True, datetime(2024, 1, 1, tzinfo=UTC), size=-2)
    assert write_csv([shift], Shift).splitlines()[1].startswith("x,-3,-1.5,true,")
    assert write_csv([Rota("PC1", tags=["=1", "b"])], Rota).splitlines()[1] == "PC1,,'=1;b"


def test_a_planners_hand_typed_quote_before_a_formula_is_removed_but_other_quotes_stay():
    text = "officer_id,borough,team\n'=PC1,'Camden,'-\n"
    assert read_csv(text, Officer) == [Officer("=PC1", "'Camden", "-")]


@pytest.mark.parametrize("value", ["'", "''", "'=x", "''=x", "'hello", "'s-Hertogenbosch", "=", "a=b"])
def test_apostrophes_survive_the_round_trip(value):
    assert read_csv(write_csv([Officer(value, value)], Officer), Officer) == [Officer(value, value)]


# --- round trip -------------------------------------------------------------------------

utc_datetimes = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.just(UTC),
)
int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
shifts = st.builds(
    Shift,
    name=st.text(),
    count=int64,
    hours=st.floats(allow_nan=False),
    on_call=st.booleans(),
    starts=utc_datetimes,
    role=st.sampled_from(["neighbourhood", "response", "armed", "other"]),
    note=st.none() | st.text(min_size=1),  # "" and None both export as an empty cell
    ends=st.none() | utc_datetimes,
    size=st.none() | int64,
    ratio=st.floats(allow_nan=False),
)


@pytest.mark.slow  # 1-2 s: the whole suite runs it, the quick lane stays under 2 minutes
@settings(max_examples=300, deadline=None)
@given(rows=st.lists(shifts, max_size=8))
def test_write_then_read_gives_back_equal_structs(rows):
    assert read_csv(write_csv(rows, Shift), Shift) == rows


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.builds(Officer, officer_id=st.text(), borough=st.text(), team=st.text()), max_size=8))
def test_officers_round_trip_whatever_text_they_hold(rows):
    assert read_csv(write_csv(rows, Officer), Officer) == rows
