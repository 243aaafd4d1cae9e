"""XNAT ResultSet rendering: columns, filters, paging and the json/csv/xml/html formats."""

from __future__ import annotations

import csv
import fnmatch
import html
import io
from xml.sax.saxutils import escape

from xnatsim.web import HTTPError, Request, Response

# Query parameters that steer a listing and therefore never filter rows.
RESERVED = {
    "format",
    "columns",
    "offset",
    "limit",
    "sortBy",
    "sortOrder",
    "restrict",
    "accept-not-found",
    "structure",
    "locator",
    "all",
    "owner",
    "member",
    "collaborator",
    "basic",
    "recursive",
    "file_format",
    "file_content",
    "listing",
    "permissions",
    "_",
}


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def select(
    req: Request,
    rows: list[dict],
    default_cols: list[str],
    uri_always: bool = True,
    fixed_columns: bool = False,
) -> tuple[list[str], list[dict[str, str]], int]:
    """Apply filters, `columns=` and paging; return (columns, rows, total before paging)."""
    available: list[str] = list(default_cols)
    for row in rows:
        for key in row:
            if key not in available:
                available.append(key)
        break
    lower = {c.lower(): c for c in available}
    for key, value in req.params.items():
        if key in RESERVED or key.lower() not in lower:
            continue
        col = lower[key.lower()]
        pattern = value.lower()
        rows = [r for r in rows if fnmatch.fnmatchcase(_text(r.get(col)).lower(), pattern)]
    cols = default_cols
    if req.params.get("columns") and not fixed_columns:
        wanted = [c.strip() for c in req.params["columns"].split(",") if c.strip()]
        cols = []
        for c in wanted:
            if c.lower() in lower:
                cols.append(lower[c.lower()])
            elif "/" in c and c.rsplit("/", 1)[1].lower() in lower:
                # An xpath such as xnat:mrSessionData/date (QueryOrganizerResource.populateQuery
                # adds it as a field; formatHeaders names the column by its xpath).
                source = lower[c.rsplit("/", 1)[1].lower()]
                rows = [{**r, c: r.get(source)} for r in rows]
                cols.append(c)
        if uri_always and "URI" not in cols and "URI" in available:
            cols.append("URI")
    total = len(rows)
    offset = _int(req.params.get("offset"), 0)
    limit = _int(req.params.get("limit"), None)
    rows = rows[offset:] if limit is None else rows[offset : offset + limit]
    out = [{c: _text(r.get(c)) for c in cols} for r in rows]
    return cols, out, total


def _int(value: str | None, default: int | None) -> int | None:
    if value is None or value == "":
        return default
    try:
        return max(0, int(value))
    except ValueError:
        raise HTTPError(400, f"Invalid number: {value}") from None


def render(
    req: Request,
    rows: list[dict],
    default_cols: list[str],
    *,
    files: bool = False,
    title: str = "",
    fixed_columns: bool = False,
) -> Response:
    """Resource and file listings keep their columns whatever `columns=` says, as XNAT's do
    (clients rely on `element_name`, `xnat_abstractresource_id` and `URI` being there)."""
    cols, out, total = select(req, rows, default_cols, fixed_columns=fixed_columns)
    return _emit(req, cols, out, total, files=files, title=title)


def render_table(req: Request, rows: list[dict], cols: list[str]) -> Response:
    """A table XNAT builds from plain SQL or by hand and sends through `representTable`
    without metadata: no filters, `columns=` or paging apply, only `sortBy`/`sortOrder`,
    and no `totalRecords` is written (`JSONTableRepresentation` with empty properties)."""
    out = [{c: _text(r.get(c)) for c in cols} for r in rows]
    sort_by = [c for c in (req.params.get("sortBy") or "").split(",") if c in cols]
    if sort_by:
        out.sort(key=lambda r: [r[c] for c in sort_by])
        if (req.params.get("sortOrder") or "").upper() == "DESC":
            out.reverse()
    return _emit(req, cols, out, None)


def _emit(
    req: Request,
    cols: list[str],
    out: list[dict[str, str]],
    total: int | None,
    *,
    files: bool = False,
    title: str = "",
) -> Response:
    fmt = (req.params.get("format") or "json").lower()
    if fmt == "json":
        result: dict = {"Result": out}
        if files:
            result["Columns"] = [{"key": "URI", "serverRoot": ""}]
            result["title"] = title or "Files"
        elif total is not None:
            result["totalRecords"] = str(total)
        return Response.json({"ResultSet": result})
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(cols)
        for row in out:
            writer.writerow([row[c] for c in cols])
        return Response(200, buf.getvalue().encode(), "text/csv;charset=UTF-8")
    if fmt == "xml":
        records = "" if total is None else f' totalRecords="{total}"'
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>\n',
            f'<results xmlns:xdat="http://nrg.wustl.edu/security"{records}>',
            "<columns>",
        ]
        parts += [f"<column>{escape(c)}</column>" for c in cols]
        parts.append("</columns><rows>")
        for row in out:
            parts.append(
                "<row>" + "".join(f"<cell>{escape(row[c])}</cell>" for c in cols) + "</row>"
            )
        parts.append("</rows></results>")
        return Response(200, "".join(parts).encode(), "text/xml;charset=UTF-8")
    if fmt == "html":
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(r[c])}</td>" for c in cols) + "</tr>" for r in out
        )
        return Response.html(f"<html><body><table><tr>{head}</tr>{body}</table></body></html>")
    raise HTTPError(400, f"Unsupported format: {fmt}")
