"""schemathesis hooks for scripts/fuzz.sh: rules of the contract that JSON Schema cannot state.

A buy whose body fits the schema can still be refused for what the sale or earlier requests
hold: a product the sale does not sell (`unknown_product`), no product named on a sale of
several (`product_required`), more than the sale's per-buyer limit (`quantity_above_limit`), a
key already used with another body (`idempotency_key_reused`). The same holds for a cart hold's
reservation, and a checkout can be refused for a quantity other than the held one
(`quantity_not_held`). The schema cannot know a sale's products, a hold's quantity or a key's
history, so these 422s are the contract working, not a gap.

`POST /admin/sales` refuses, with `422 validation_failed`, a sale whose `ends_at` is not after
its `starts_at`, whose name is only whitespace, or which lists a product id twice
(server/openapi.json, NewSale's description). Those rules relate two fields or need Rust's idea
of whitespace, so the schema cannot express them, and schemathesis counts such a refusal of a
schema-valid body as a failure ("Schema-valid request rejected"). This hook drops that failure
only when every problem the server named is one of those rules and the body really breaks it;
any other refusal of a valid body still fails the run (an `invalid_field` of a schema-valid
buy, say, is a gap between the schema and the server).

Two more of that kind (issue 16): a wishlist with neither an email address nor a push
subscription (`invalid_field` on `email`: the rule relates two optional fields), and a catalog
product whose name is only whitespace.
"""

from datetime import datetime

import schemathesis

# Rust's `char::is_whitespace` (Unicode White_Space), which `str::trim` uses. Python's
# `str.isspace` differs (it counts U+001C..U+001F, and not U+0085 in every version), so the set
# is spelled out.
RUST_WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)


def _instant(text):
    """An RFC 3339 date-time, or None when Python cannot read it (then no rule is assumed)."""
    try:
        return datetime.fromisoformat(text.upper())
    except (AttributeError, TypeError, ValueError):
        return None


def _breaks_unstated_rule(sale, problem):
    field = problem.get("field", "")
    if field == "ends_at":
        starts, ends = _instant(sale.get("starts_at")), _instant(sale.get("ends_at"))
        if starts is None or ends is None or (starts.tzinfo is None) != (ends.tzinfo is None):
            return False
        return ends <= starts
    if field == "name":
        name = sale.get("name")
        return isinstance(name, str) and all(c in RUST_WHITESPACE for c in name)
    if field.startswith("products[") and problem.get("problem") == "is listed twice":
        ids = [p.get("product_id") for p in sale.get("products", []) if isinstance(p, dict)]
        return len(ids) != len(set(ids))
    return False


def _refused_for_the_sale(buy, error):
    code = error.get("code")
    if code in ("unknown_product", "product_required", "idempotency_key_reused"):
        return True
    if code == "quantity_above_limit":
        limit = (error.get("details") or {}).get("limit")
        return isinstance(limit, int) and buy.get("quantity", 0) > limit
    return False


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keep every failure except a 422 that a rule the schema cannot state explains."""
    if failure.code != "ST202" or response.status_code != 422 or not isinstance(case.body, dict):
        return True
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return True
    if case.operation.label in ("POST /sales/{sale_id}/orders", "POST /sales/{sale_id}/holds"):
        return not _refused_for_the_sale(case.body, error)
    if case.operation.label == "POST /sales/{sale_id}/holds/{hold_id}/checkout":
        # What the hold holds and the buyer's other orders are not in the schema either.
        return error.get("code") not in ("quantity_not_held", "idempotency_key_reused")
    if case.operation.label == "POST /wishlist":
        # "An email address, a push subscription, or both" relates two optional fields.
        body = case.body
        return not (
            error.get("code") == "invalid_field"
            and (error.get("details") or {}).get("field") == "email"
            and body.get("email") is None
            and body.get("push_subscription") is None
        )
    if case.operation.label == "PUT /admin/products/{product_id}":
        # A name of Rust whitespace only, as for a sale's name.
        name = case.body.get("name")
        return not (
            error.get("code") == "invalid_field"
            and (error.get("details") or {}).get("field") == "name"
            and isinstance(name, str)
            and all(c in RUST_WHITESPACE for c in name)
        )
    if case.operation.label != "POST /admin/sales" or error.get("code") != "validation_failed":
        return True
    problems = (error.get("details") or {}).get("problems") or []
    return not problems or not all(_breaks_unstated_rule(case.body, p) for p in problems)
