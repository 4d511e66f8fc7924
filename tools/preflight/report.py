"""The preflight's one table: a row per finding, printed for a terminal and written as Markdown."""

from __future__ import annotations

import enum
import itertools
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from tools.markdown import table


class Verdict(enum.Enum):
    PASS = "PASS"
    WARN = "WARN"  # worth knowing, does not block a deployment
    FAIL = "FAIL"  # `pulumi up` would fail (or a check could not be made)


@dataclass(frozen=True)
class Row:
    check: str
    subject: str
    verdict: Verdict
    detail: str
    remedy: str = ""


HEADERS = ("check", "subject", "verdict", "detail", "remedy")
# Long columns wrap at these widths, so the table reads in a terminal and in a GitHub job log alike.
WRAPPED_WIDTHS = {"detail": 52, "remedy": 48}
SHORT_COLUMN_LIMIT = 36


def _cells(row: Row) -> tuple[str, ...]:
    return (row.check, row.subject, row.verdict.value, row.detail, row.remedy)


def _widths(rows: Sequence[Row]) -> list[int]:
    widths = []
    for index, header in enumerate(HEADERS):
        if header in WRAPPED_WIDTHS:
            widths.append(WRAPPED_WIDTHS[header])
        else:
            longest = max([len(header), *(len(_cells(row)[index]) for row in rows)])
            widths.append(min(longest, SHORT_COLUMN_LIMIT))
    return widths


def _wrap(text: str, width: int) -> list[str]:
    # Names, URLs and commands stay whole (they are copied from here), even if they overflow the column.
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(text.ljust(width) for text, width in zip(cells, widths, strict=True)).rstrip()


def summary(rows: Sequence[Row]) -> str:
    counts = ", ".join(f"{sum(row.verdict is verdict for row in rows)} {verdict.value}" for verdict in Verdict)
    return f"{len(rows)} rows: {counts}"


def as_text(rows: Sequence[Row]) -> str:
    widths = _widths(rows)
    separator = "  ".join("-" * width for width in widths)
    lines = [_line([header.upper() for header in HEADERS], widths), separator]
    for row in rows:
        wrapped = [_wrap(text, width) for text, width in zip(_cells(row), widths, strict=True)]
        lines += [_line(parts, widths) for parts in itertools.zip_longest(*wrapped, fillvalue="")]
        lines.append(separator)
    lines.append(summary(rows))
    return "\n".join(lines) + "\n"


def as_markdown(rows: Sequence[Row], title: str) -> str:
    return "\n".join([f"### {title}", "", *table(HEADERS, map(_cells, rows)), "", summary(rows), ""]) + "\n"


def failed(rows: Sequence[Row]) -> bool:
    return any(row.verdict is Verdict.FAIL for row in rows)
