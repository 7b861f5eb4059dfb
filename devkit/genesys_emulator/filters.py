"""Contact list filter validation and evaluation (``ContactListFilter`` clauses/predicates).

Validation mirrors what the real API rejects (unknown operator or column, missing ``range`` for BETWEEN/IN,
more than 10 predicates) so a client's filter builder fails here the way it would in production.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from .errors import bad_request

OPERATORS = (
    "EQUALS",
    "LESS_THAN",
    "LESS_THAN_EQUALS",
    "GREATER_THAN",
    "GREATER_THAN_EQUALS",
    "CONTAINS",
    "BEGINS_WITH",
    "ENDS_WITH",
    "BEFORE",
    "AFTER",
    "BETWEEN",
    "IN",
)
COLUMN_TYPES = ("alphabetic", "numeric")
FILTER_TYPES = ("AND", "OR")
RANGE_OPERATORS = ("BETWEEN", "IN")
_DATE_FORMATS = ("%m-%d-%Y", "%m/%d/%Y", "%Y-%m-%d", "%m-%d-%Y %H:%M", "%m/%d/%Y %H:%M")

Record = Sequence[str | None]
Matcher = Callable[[Record], bool]


def validate_filter_type(value: Any, field: str) -> str:
    if not isinstance(value, str) or value.upper() not in FILTER_TYPES:
        raise bad_request(f"{field} must be one of {', '.join(FILTER_TYPES)}", field)
    return value.upper()


def validate_clauses(
    clauses: Any, columns: Sequence[str], max_predicates: int | None, field: str = "clauses"
) -> list[dict[str, Any]]:
    """Return normalised clauses or raise a 400 naming the first invalid field."""
    if not isinstance(clauses, list) or not clauses:
        raise bad_request(f"{field} must be a non-empty array", field)
    known = set(columns)
    total = 0
    out: list[dict[str, Any]] = []
    for ci, clause in enumerate(clauses):
        cfield = f"{field}[{ci}]"
        if not isinstance(clause, dict):
            raise bad_request(f"{cfield} must be an object", cfield)
        ftype = validate_filter_type(clause.get("filterType"), f"{cfield}.filterType")
        preds = clause.get("predicates")
        if not isinstance(preds, list) or not preds:
            raise bad_request(f"{cfield}.predicates must be a non-empty array", f"{cfield}.predicates")
        total += len(preds)
        if max_predicates is not None and total > max_predicates:
            raise bad_request(
                f"A filter may contain at most {max_predicates} predicates",
                "predicates",
                code="filter.predicates.limit.exceeded",
            )
        out.append(
            {
                "filterType": ftype,
                "predicates": [
                    _validate_predicate(p, known, f"{cfield}.predicates[{pi}]") for pi, p in enumerate(preds)
                ],
            }
        )
    return out


def _validate_predicate(pred: Any, known: set[str], field: str) -> dict[str, Any]:
    if not isinstance(pred, dict):
        raise bad_request(f"{field} must be an object", field)
    column = pred.get("column")
    if not isinstance(column, str) or not column:
        raise bad_request(f"{field}.column is required", f"{field}.column")
    if column not in known:
        raise bad_request(f"Column {column!r} is not a column of the contact list", f"{field}.column")
    ctype = pred.get("columnType")
    if ctype not in COLUMN_TYPES:
        raise bad_request(f"{field}.columnType must be one of {', '.join(COLUMN_TYPES)}", f"{field}.columnType")
    op = pred.get("operator")
    if op not in OPERATORS:
        raise bad_request(f"{field}.operator must be one of {', '.join(OPERATORS)}", f"{field}.operator")
    inverted = pred.get("inverted", False)
    if not isinstance(inverted, bool):
        raise bad_request(f"{field}.inverted must be a boolean", f"{field}.inverted")
    out: dict[str, Any] = {"column": column, "columnType": ctype, "operator": op, "inverted": inverted}
    if op in RANGE_OPERATORS:
        out["range"] = _validate_range(pred.get("range"), op, ctype, f"{field}.range")
    else:
        value = pred.get("value")
        if not isinstance(value, str) or value == "":
            raise bad_request(f"{field}.value is required for operator {op}", f"{field}.value")
        if ctype == "numeric" and op not in ("BEFORE", "AFTER") and _num(value) is None:
            raise bad_request(f"{field}.value must be numeric for a numeric column", f"{field}.value")
        if op in ("BEFORE", "AFTER") and _date(value) is None:
            raise bad_request(f"{field}.value must be a date for operator {op}", f"{field}.value")
        out["value"] = value
    return out


def _validate_range(rng: Any, op: str, ctype: str, field: str) -> dict[str, Any]:
    if not isinstance(rng, dict):
        raise bad_request(f"{field} is required for operator {op}", field)
    out: dict[str, Any] = {}
    for key in ("minInclusive", "maxInclusive"):
        if key in rng:
            if not isinstance(rng[key], bool):
                raise bad_request(f"{field}.{key} must be a boolean", f"{field}.{key}")
            out[key] = rng[key]
    if op == "IN":
        in_set = rng.get("inSet")
        if not isinstance(in_set, list) or not in_set or not all(isinstance(v, str) for v in in_set):
            raise bad_request(f"{field}.inSet must be a non-empty array of strings", f"{field}.inSet")
        out["inSet"] = list(in_set)
        return out
    for key in ("min", "max"):
        value = rng.get(key)
        if not isinstance(value, str) or value == "":
            raise bad_request(f"{field}.{key} is required for operator BETWEEN", f"{field}.{key}")
        if ctype == "numeric" and _num(value) is None:
            raise bad_request(f"{field}.{key} must be numeric for a numeric column", f"{field}.{key}")
        out[key] = value
    return out


def compile_filter(filter_type: str, clauses: list[dict[str, Any]], columns: Sequence[str]) -> Matcher:
    """Turn validated clauses into a predicate over a contact record (values aligned with ``columns``)."""
    index = {c: i for i, c in enumerate(columns)}
    compiled = [(c["filterType"], [_compile_predicate(p, index) for p in c["predicates"]]) for c in clauses]

    def clause_ok(ftype: str, preds: list[Matcher], rec: Record) -> bool:
        return all(p(rec) for p in preds) if ftype == "AND" else any(p(rec) for p in preds)

    if filter_type == "AND":
        return lambda rec: all(clause_ok(t, ps, rec) for t, ps in compiled)
    return lambda rec: any(clause_ok(t, ps, rec) for t, ps in compiled)


def _compile_predicate(pred: dict[str, Any], index: dict[str, int]) -> Matcher:
    pos = index.get(pred["column"])
    op: str = pred["operator"]
    numeric = pred["columnType"] == "numeric"
    inverted: bool = pred.get("inverted", False)
    test = _operator_test(op, numeric, pred)

    def match(rec: Record) -> bool:
        raw = rec[pos] if pos is not None and pos < len(rec) else None
        return test("" if raw is None else raw) != inverted

    return match


def _operator_test(op: str, numeric: bool, pred: dict[str, Any]) -> Callable[[str], bool]:
    if op in ("BEFORE", "AFTER"):
        ref = _date(pred["value"])

        def date_test(v: str) -> bool:
            d = _date(v)
            if d is None or ref is None:
                return False
            return d < ref if op == "BEFORE" else d > ref

        return date_test
    if op in ("CONTAINS", "BEGINS_WITH", "ENDS_WITH"):
        needle = pred["value"].lower()
        if op == "CONTAINS":
            return lambda v: needle in v.lower()
        if op == "BEGINS_WITH":
            return lambda v: v.lower().startswith(needle)
        return lambda v: v.lower().endswith(needle)
    conv: Callable[[str], Any] = _num if numeric else str.lower
    if op == "IN":
        members = {conv(x) for x in pred["range"]["inSet"]}
        return lambda v: conv(v) in members
    if op == "BETWEEN":
        rng = pred["range"]
        lo, hi = conv(rng["min"]), conv(rng["max"])
        lo_inc, hi_inc = rng.get("minInclusive", True), rng.get("maxInclusive", True)

        def between(v: str) -> bool:
            x = conv(v)
            if x is None:
                return False
            above = x >= lo if lo_inc else x > lo
            below = x <= hi if hi_inc else x < hi
            return above and below

        return between
    ref = conv(pred["value"])
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "EQUALS": lambda a, b: a == b,
        "LESS_THAN": lambda a, b: a < b,
        "LESS_THAN_EQUALS": lambda a, b: a <= b,
        "GREATER_THAN": lambda a, b: a > b,
        "GREATER_THAN_EQUALS": lambda a, b: a >= b,
    }
    cmp = compare[op]

    def compare_test(v: str) -> bool:
        x = conv(v)
        return x is not None and cmp(x, ref)

    return compare_test


def _num(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _date(value: str) -> datetime | None:
    text = value.strip()
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=None)
