"""Errors as kube-apiserver answers them: a meta/v1 Status with its reason and code, and, for
Invalid, the field causes kubectl prints (`The Pod "x" is invalid: spec.containers[0].name:
Required value`)."""
from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from aiohttp import web

REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
           405: "MethodNotAllowed", 406: "NotAcceptable", 409: "Conflict", 410: "Expired",
           413: "RequestEntityTooLarge", 415: "UnsupportedMediaType", 422: "Invalid",
           429: "TooManyRequests", 500: "InternalError", 504: "Timeout"}


CAUSE_REASONS = {"Required value": "FieldValueRequired", "Invalid value": "FieldValueInvalid",
                 "Unsupported value": "FieldValueNotSupported",
                 "Duplicate value": "FieldValueDuplicate", "Forbidden": "FieldValueForbidden",
                 "Too long": "FieldValueTooLong"}


class ApiError(Exception):
    """An answer other than success, carried up to the handler that writes it."""

    def __init__(self, code: int, message: str, reason: str | None = None,
                 details: dict | None = None):
        super().__init__(message)
        self.code, self.message = code, message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details

    def body(self) -> dict:
        out = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            out["details"] = self.details
        return out

    def response(self) -> web.Response:
        """The aiohttp response (imported here: the rest of this module is plain data)."""
        from aiohttp import web
        return web.Response(status=self.code, text=json.dumps(self.body()),
                            content_type="application/json")


def _details(resource: str, name: str, group: str = "") -> dict:
    out = {"name": name, "kind": resource}
    if group:
        out["group"] = group
    return out


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    what = f"{resource}.{group}" if group else resource
    return ApiError(404, f'{what} "{name}" not found', details=_details(resource, name, group))


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    what = f"{resource}.{group}" if group else resource
    return ApiError(409, f'{what} "{name}" already exists', "AlreadyExists",
                    _details(resource, name, group))


def conflict(resource: str, name: str, group: str = "") -> ApiError:
    what = f"{resource}.{group}" if group else resource
    return ApiError(409, f'Operation cannot be fulfilled on {what} "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try "
                    "again", "Conflict", _details(resource, name, group))


def invalid(kind: str, name: str, causes: list[tuple[str, str, str]],
            group: str = "") -> ApiError:
    """422 with its causes: [(field, type, detail)], kube-apiserver's message built of them."""
    shown = "; ".join(f"{f}: {t}" + (f": {d}" if d else "") for f, t, d in causes)
    if len(causes) > 1:
        shown = "[" + ", ".join(f"{f}: {t}" + (f": {d}" if d else "")
                                for f, t, d in causes) + "]"
    details = {"name": name, "kind": kind,
               "causes": [{"reason": CAUSE_REASONS.get(t, "FieldValueInvalid"),
                           "message": f"{t}: {d}" if d else t, "field": f}
                          for f, t, d in causes]}
    if group:
        details["group"] = group
    return ApiError(422, f'{kind} "{name}" is invalid: {shown}', "Invalid", details)


def success(details: dict | None = None) -> dict:
    out = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details:
        out["details"] = details
    return out
