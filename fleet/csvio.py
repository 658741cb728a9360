"""CSV to and from msgspec Structs, for the spreadsheets planners import and export.

Columns are the Struct's field names (any case, spaces around them ignored, a UTF-8 BOM
from Excel tolerated). An empty cell means the field's default, or None where the field
allows it, so "" and None both export as an empty cell; a row of empty cells is skipped.
Lists are joined by ``;``, and split on it again when read.

Formula injection: a spreadsheet runs a cell starting with ``= + - @``, tab or CR as a
formula, so ``write_csv`` prefixes such text with a single quote ``'``. To keep values
intact both ways, it also prefixes text that starts with ``'`` followed by one of those
characters or another ``'``; ``read_csv`` removes exactly one leading ``'`` in those cases.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from datetime import datetime
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, cast, get_args, get_origin

import msgspec
import msgspec.inspect as mi
from msgspec.structs import FieldInfo

from fleet.clock import to_iso
from fleet.errors import BadRequest

T = TypeVar("T", bound=msgspec.Struct)

MAX_PROBLEMS = 20
LIST_SEPARATOR = ";"
FORMULA_STARTS = frozenset("=+-@\t\r")
_ESCAPED_STARTS = FORMULA_STARTS | {"'"}
_LIST_TYPES = (mi.ListType, mi.VarTupleType, mi.SetType, mi.FrozenSetType)
_ERROR_AT = re.compile(r"(?P<text>.*) - at `\$\.(?P<field>[^.\[`]+)[^`]*`", re.DOTALL)


def _members(kind: mi.Type) -> tuple[mi.Type, ...]:
    return kind.types if isinstance(kind, mi.UnionType) else (kind,)


def _defuse(text: str) -> str:
    """Prefix a ``'`` so a spreadsheet shows the text instead of running it."""
    if text[:1] in FORMULA_STARTS or (text[:1] == "'" and text[1:2] in _ESCAPED_STARTS):
        return "'" + text
    return text


def _undefuse(text: str) -> str:
    return text[1:] if text[:1] == "'" and text[1:2] in _ESCAPED_STARTS else text


def _cell_value(field: mi.Field, cell: str) -> Any:
    """What msgspec should convert a cell to; ``msgspec.NODEFAULT`` means leave it out."""
    members = _members(field.type)
    if not any(isinstance(m, mi.StrType) for m in members):
        # Spaces a spreadsheet left around a number or a choice are noise; in text, data.
        cell = cell.strip()
    is_list = any(isinstance(m, _LIST_TYPES) for m in members)
    if cell == "":
        if not field.required:
            return msgspec.NODEFAULT
        if any(isinstance(m, mi.NoneType) for m in members):
            return None
        return [] if is_list else cell
    return cell.split(LIST_SEPARATOR) if is_list else cell


def _choices(annotation: Any) -> list[Any]:
    """A Literal's values in declaration order (msgspec's own message sorts them)."""
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    if get_origin(annotation) is Annotated:
        return _choices(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        return [choice for member in get_args(annotation) for choice in _choices(member)]
    return []


def _explain(error: msgspec.ValidationError, row: dict[str, Any], fields: dict[str, FieldInfo]) -> str:
    """msgspec's message, led by the column name and showing the cell that was wrong."""
    match = _ERROR_AT.fullmatch(str(error))
    field = None if match is None else fields.get(match["field"])
    if match is None or field is None:
        return str(error)
    text, value = match["text"], row.get(field.encode_name)
    if value == "":
        return f"{field.name}: a value is required"
    choices = _choices(field.type)
    if choices and text.startswith("Invalid enum value"):
        text = f"Expected `{' | '.join(map(repr, choices))}`, got `{value!r}`"
    elif isinstance(value, str):
        text = text.replace("got `str`", f"got `{value!r}`")
        if "got `" not in text:
            text += f", got `{value!r}`"
    return f"{field.name}: {text}"


def _header(cells: list[str], fields: list[mi.Field]) -> list[mi.Field]:
    """The field behind each column, or BadRequest listing every header problem."""
    by_name = {field.name.casefold(): field for field in fields}
    columns: list[mi.Field] = []
    problems: list[str] = []
    for position, cell in enumerate(cells, start=1):
        name = cell.strip()
        field = by_name.get(name.casefold())
        if not name:
            problems.append(f"line 1: column {position} has no name")
        elif field is None:
            problems.append(f"line 1: unknown column {name!r}; expected {', '.join(f.name for f in fields)}")
        elif field in columns:
            problems.append(f"line 1: column {field.name!r} appears more than once")
        else:
            columns.append(field)
    problems += [f"line 1: missing required column {f.name!r}" for f in fields if f.required and f not in columns]
    if problems:
        raise BadRequest("\n".join(problems))
    return columns


def read_csv(text: str, kind: type[T], *, max_rows: int = 200_000) -> list[T]:
    """Structs from CSV text with a header row; any problem is a BadRequest naming its line.

    Up to twenty problems are reported together, so a planner fixes a file in one pass.
    """
    fields = list(cast(mi.StructType, mi.type_info(kind)).fields)
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    try:
        header = next(reader, None)
        if not header or not any(cell.strip() for cell in header):
            raise BadRequest("line 1: a header row naming the columns is required")
        columns = _header(header, fields)
        by_encode_name = {field.encode_name: field for field in msgspec.structs.fields(kind)}
        rows: list[T] = []
        problems: list[str] = []
        problem_count, line = 0, reader.line_num
        for cells in reader:
            start, line = line + 1, reader.line_num  # a quoted newline spans several lines
            if not any(cells):
                continue
            if len(rows) + problem_count >= max_rows:
                raise BadRequest(f"line {start}: more than {max_rows} rows; split the file")
            if len(cells) != len(columns):
                found = f"line {start}: {len(cells)} cells but the header has {len(columns)} columns"
            else:
                row = {
                    f.encode_name: value
                    for f, cell in zip(columns, cells, strict=True)
                    if (value := _cell_value(f, _undefuse(cell))) is not msgspec.NODEFAULT
                }
                try:
                    rows.append(msgspec.convert(row, kind, strict=False))
                    continue
                except msgspec.ValidationError as exc:
                    found = f"line {start}: {_explain(exc, row, by_encode_name)}"
            problem_count += 1
            if len(problems) < MAX_PROBLEMS:
                problems.append(found)
    except csv.Error as exc:
        raise BadRequest(f"line {reader.line_num}: {exc}") from None
    if problem_count > MAX_PROBLEMS:
        problems.append(f"and {problem_count - MAX_PROBLEMS} more")
    if problems:
        raise BadRequest("\n".join(problems))
    return rows


def _plain_text(value: Any) -> str:
    """A scalar as cell text, before any formula escaping."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return to_iso(value)
    builtin = msgspec.to_builtins(value)
    if isinstance(builtin, (dict, list)):
        raise TypeError(f"cannot write a {type(value).__name__} to a CSV cell")
    return "" if builtin is None else str(builtin)


def _cell_text(value: Any) -> str:
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return _defuse(LIST_SEPARATOR.join(_plain_text(item) for item in items))
    if isinstance(value, str):
        return _defuse(value)
    return _plain_text(value)


def write_csv(rows: Iterable[msgspec.Struct], kind: type[msgspec.Struct]) -> str:
    """CSV text with a header of ``kind``'s field names, in declaration order."""
    names = [field.name for field in msgspec.structs.fields(kind)]
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
    writer.writerow(names)
    for row in rows:
        if not isinstance(row, kind):
            raise TypeError(f"write_csv({kind.__name__}) got a {type(row).__name__}")
        writer.writerow([_cell_text(getattr(row, name)) for name in names])
    return out.getvalue()
