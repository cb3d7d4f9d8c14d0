"""The supplier API's OpenAPI 3.0 description, served at ``/api/v1/openapi.json``.

Written here, beside the views it describes; ``tests/test_api_fuzz.py`` sends what schemathesis generates
from it (valid and invalid) to every operation and checks each answer against it.
"""

from __future__ import annotations

from typing import Any

from portal.db import MAX_ROW_ID
from portal.documents.models import DocumentStatus
from portal.documents.services import REQUIREMENT_STATES
from portal.documents.validation import ATTACHMENT_KINDS, ATTACHMENT_TYPES, EXTENSIONS, MAX_BYTES
from portal.orders.models import DelayReason, LineState, OrderState, RejectReason, ShipNoticeState
from portal.orders.queries import SORTS, TAB_LABELS
from portal.orders.services import MAX_DELIVERIES, MESSAGE_FILES, MESSAGE_MAX_LENGTH
from portal.tenancy.models import DocumentGating

DECIMAL = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$", "example": "60"}
DAY = {"type": "string", "format": "date", "example": "2026-12-01"}
ID = {"type": "integer", "minimum": 1, "maximum": MAX_ROW_ID}
_MB = MAX_BYTES // (1024 * 1024)
VERSION = {"type": "integer", "minimum": 1, "description": "The order's version, as GET /orders/{order_id} gives it."}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "400": _json(_ref("Error"), "The request is not the documented shape; nothing was saved."),
    "401": _json(_ref("Error"), "No valid API key."),
    "429": _json(_ref("Error"), "Too many calls with this key, or invalid keys from this address (Retry-After)."),
}
WRITE_ERRORS = {
    **ERRORS,
    "404": _json(_ref("Error"), "No such order (or line) in this key's supplier account."),
    "409": _json(_ref("Conflict"), "The version is not the order's: nothing was saved; the current order comes along."),
    "422": _json(_ref("Error"), "The request breaks a rule (by line in error.lines); nothing was saved."),
}
ME = ("user", "key", "customer", "supplier", "role")
ORDER_ID = {"name": "order_id", "in": "path", "required": True, "schema": ID}


def _uploaded_file(content_types: list[str]) -> dict[str, Any]:
    """An uploaded file (a certificate, a file on an order message), given back as it came."""
    return {
        "description": "The file, as uploaded.",
        "content": {content_type: {"schema": {"type": "string", "format": "binary"}} for content_type in content_types},
    }


CERTIFICATE_FILE = _uploaded_file(sorted(set(EXTENSIONS.values())))
MESSAGE_FILE = _uploaded_file(ATTACHMENT_TYPES)


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "A key of the client's for this write (a UUID): a retry with the same key and request gets "
    "the first answer again (header Idempotent-Replayed: true) for 24 hours, and nothing is written twice.",
    "schema": {"type": "string", "pattern": r"^[A-Za-z0-9._:-]{1,100}$"},
}


def _write(summary: str, body: str, parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": [*(parameters or [ORDER_ID]), IDEMPOTENCY_KEY],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(body)}}},
            "responses": {"200": _json(_ref("WriteResult"), "Done; the order as it now is."), **WRITE_ERRORS},
        }
    }


def document() -> dict[str, Any]:
    delivery = {
        "type": "object",
        "required": ["quantity", "date"],
        "properties": {"quantity": DECIMAL, "date": DAY},
    }
    deliveries = {"type": "array", "items": _ref("Delivery"), "minItems": 1, "maxItems": MAX_DELIVERIES}
    line = {
        "type": "object",
        "properties": {
            "id": ID,
            "position": {"type": "integer"},
            "product_code": {"type": "string"},
            "product_name": {"type": "string"},
            "supplier_product_code": {"type": "string", "nullable": True},
            "quantity": DECIMAL,
            "unit": {"type": "string"},
            "unit_price": DECIMAL,
            "requested_date": DAY,
            "state": {"type": "string", "enum": [s.value for s in LineState]},
            "deliveries": {"type": "array", "items": _ref("Delivery")},
            "shipped_quantity": DECIMAL,
            "received_quantity": DECIMAL,
        },
        "required": ["id", "position", "quantity", "unit_price", "requested_date", "state", "deliveries"],
    }
    order = {
        "type": "object",
        "properties": {
            "id": ID,
            "number": {"type": "string"},
            "version": VERSION,
            "state": {"type": "string", "enum": [s.value for s in OrderState]},
            "order_date": DAY,
            "due_date": {**DAY, "nullable": True},
            "currency": {"type": "string"},
            "total_value": DECIMAL,
            "lines": {"type": "array", "items": _ref("Line")},
            "ship_notices": {"type": "array", "items": _ref("ShipNoticeSummary")},
        },
        "required": ["id", "number", "version", "state", "order_date", "currency", "lines", "ship_notices"],
    }
    summary = {
        "type": "object",
        "properties": {
            "id": ID,
            "number": {"type": "string"},
            "state": {"type": "string", "enum": [s.value for s in OrderState]},
            "order_date": DAY,
            "due_date": {**DAY, "nullable": True},
            "ship_to": {"type": "string", "nullable": True},
            "buyer": {"type": "string", "nullable": True},
            "total_value": DECIMAL,
            "currency": {"type": "string"},
            "url": {"type": "string"},
        },
        "required": ["id", "number", "state", "order_date", "url"],
    }
    answer = {
        "type": "object",
        "required": ["line_id", "action"],
        "properties": {
            "line_id": ID,
            "action": {"type": "string", "enum": ["accept", "change", "reject"]},
            "deliveries": {**deliveries, "description": "With the action change: the deliveries promised."},
            "price": {**DECIMAL, "description": "A new unit price: always goes to the buyer."},
            "reason": {"type": "string", "enum": [r.value for r in RejectReason], "description": "With reject."},
            "comment": {"type": "string", "maxLength": 2000},
        },
    }
    error = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["status", "message"],
                "properties": {
                    "status": {"type": "integer"},
                    "message": {"type": "string"},
                    "lines": {
                        "type": "object",
                        "description": "Problems by line id ('order' for the request itself).",
                        "additionalProperties": {"type": "array", "items": {"type": "string"}},
                    },
                    "current_version": {"type": "integer"},
                    "fields": {
                        "type": "object",
                        "description": "Problems by field of an upload.",
                        "additionalProperties": {"type": "array", "items": {"type": "string"}},
                    },
                },
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Supplier API",
            "version": "1",
            "description": "A supplier's system reads its customer's purchase orders and answers them line by "
            "line, moves promised dates and sends ship notices, under the rules of the portal's order page; it "
            "reads what certificates the customer requires and uploads them for review. "
            "Keys are issued under Orders → Connect your system (API).",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"apiKey": []}],
        "paths": {
            "/me": {
                "get": {
                    "summary": "Who the key acts for",
                    "responses": {"200": _json(_ref("Me"), "The person, the customer and the supplier."), **ERRORS},
                }
            },
            "/orders": {
                "get": {
                    "summary": "The supplier's orders, 50 a page",
                    "parameters": [
                        {"name": "state", "in": "query", "schema": {"type": "string", "enum": list(TAB_LABELS)}},
                        {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 64}},
                        {"name": "due_from", "in": "query", "schema": DAY},
                        {"name": "due_to", "in": "query", "schema": DAY},
                        {"name": "sort", "in": "query", "schema": {"type": "string", "enum": list(SORTS)}},
                        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100000}},
                    ],
                    "responses": {"200": _json(_ref("OrderList"), "One page of orders."), **ERRORS},
                }
            },
            "/orders/{order_id}": {
                "get": {
                    "summary": "One order, its lines and their current deliveries",
                    "parameters": [ORDER_ID],
                    "responses": {
                        "200": _json(_ref("Order"), "The order."),
                        "404": WRITE_ERRORS["404"],
                        **ERRORS,
                    },
                }
            },
            "/orders/{order_id}/answers": _write("Answer lines awaiting a response", "Answers"),
            "/orders/{order_id}/accept-all": _write("Accept every open line as requested", "AcceptAll"),
            "/orders/{order_id}/lines/{line_id}/promise": _write(
                "New deliveries for a confirmed line, with a reason",
                "Promise",
                [ORDER_ID, {"name": "line_id", "in": "path", "required": True, "schema": ID}],
            ),
            "/orders/{order_id}/ship-notices": _write("Send a ship notice", "ShipNotice"),
            "/orders/{order_id}/ship-notices/{notice_id}/cancel": _write(
                "Cancel a ship notice nothing was received against",
                "AcceptAll",
                [ORDER_ID, {"name": "notice_id", "in": "path", "required": True, "schema": ID}],
            ),
            "/orders/{order_id}/messages": {
                "get": {
                    "summary": "The order's conversation with the buyers, oldest first",
                    "parameters": [ORDER_ID],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["messages"],
                                "properties": {"messages": {"type": "array", "items": _ref("Message")}},
                            },
                            "The messages.",
                        ),
                        "404": WRITE_ERRORS["404"],
                        **ERRORS,
                    },
                },
                "post": {
                    "summary": "A message to the order's buyers",
                    "parameters": [ORDER_ID],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["body"],
                                    "properties": {
                                        "body": {"type": "string", "minLength": 1, "maxLength": MESSAGE_MAX_LENGTH}
                                    },
                                }
                            },
                            # Words and files, up to five, each under the attachments' policy.
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "body": {"type": "string", "maxLength": MESSAGE_MAX_LENGTH},
                                        "files": {
                                            "type": "array",
                                            "items": {"type": "string", "format": "binary"},
                                            "maxItems": MESSAGE_FILES,
                                            "description": f"{ATTACHMENT_KINDS} files, each up to {_MB} MB.",
                                        },
                                    },
                                }
                            },
                        },
                    },
                    "responses": {
                        "201": _json(
                            {"type": "object", "required": ["message"], "properties": {"message": _ref("Message")}},
                            "Sent; the buyers hear of it.",
                        ),
                        "404": WRITE_ERRORS["404"],
                        "413": _json(_ref("Error"), f"A file is larger than {_MB} MB, or the request than 20 MB."),
                        "422": _json(
                            _ref("Error"),
                            "No words and no file, too many files, or a file the policy "
                            "refuses (named in error.fields.files); nothing was saved.",
                        ),
                        "503": _json(_ref("Error"), "The virus scanner could not check a file: nothing stored."),
                        **ERRORS,
                    },
                },
            },
            "/orders/{order_id}/ship-notices/{notice_id}/packing-slip": {
                "get": {
                    "summary": "A ship notice's packing slip (PDF), to put in the shipment",
                    "parameters": [ORDER_ID, {"name": "notice_id", "in": "path", "required": True, "schema": ID}],
                    "responses": {
                        "200": {
                            "description": "The packing slip: the parties, the shipment, what it holds line by line, "
                            "and the notice's number as a Code 128 barcode.",
                            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
                        },
                        "404": WRITE_ERRORS["404"],
                        **ERRORS,
                    },
                }
            },
            "/orders/{order_id}/messages/{message_id}/files/{file_id}": {
                "get": {
                    "summary": "A file attached to a message on the order, as sent",
                    "parameters": [
                        ORDER_ID,
                        {"name": "message_id", "in": "path", "required": True, "schema": ID},
                        {"name": "file_id", "in": "path", "required": True, "schema": ID},
                    ],
                    "responses": {
                        "200": MESSAGE_FILE,
                        "404": WRITE_ERRORS["404"],
                        **ERRORS,
                    },
                }
            },
            **_certificate_paths(),
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "spk_<tenant>_<secret>"}},
            "schemas": {
                "Delivery": delivery,
                "Line": line,
                "Order": order,
                "OrderSummary": summary,
                "OrderList": {
                    "type": "object",
                    "required": ["orders", "page", "pages", "total", "counts"],
                    "properties": {
                        "orders": {"type": "array", "items": _ref("OrderSummary")},
                        "page": {"type": "integer"},
                        "pages": {"type": "integer"},
                        "total": {"type": "integer"},
                        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                    },
                },
                "Me": {
                    "type": "object",
                    "required": list(ME),
                    "properties": {name: {"type": "string"} for name in ME},
                },
                "Answer": answer,
                "Answers": {
                    "type": "object",
                    "required": ["version", "answers"],
                    "properties": {
                        "version": VERSION,
                        "answers": {"type": "array", "items": _ref("Answer"), "minItems": 1},
                    },
                },
                "AcceptAll": {"type": "object", "required": ["version"], "properties": {"version": VERSION}},
                "Promise": {
                    "type": "object",
                    "required": ["version", "deliveries", "reason"],
                    "properties": {
                        "version": VERSION,
                        "deliveries": deliveries,
                        "reason": {"type": "string", "enum": [r.value for r in DelayReason]},
                        "comment": {"type": "string", "maxLength": 2000},
                    },
                },
                "ShipNotice": {
                    "type": "object",
                    "required": ["version", "ship_date", "expected_arrival", "lines"],
                    "properties": {
                        "version": VERSION,
                        "ship_date": DAY,
                        "expected_arrival": DAY,
                        "carrier": {"type": "string", "maxLength": 120},
                        "tracking_number": {"type": "string", "maxLength": 120},
                        "packing_slip": {"type": "string", "maxLength": 120},
                        "lines": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "required": ["line_id", "quantity"],
                                "properties": {"line_id": ID, "quantity": DECIMAL},
                            },
                        },
                    },
                },
                "WriteResult": {
                    "type": "object",
                    "required": ["warnings", "order"],
                    "properties": {
                        "confirmed": {"type": "array", "items": ID},
                        "pending": {"type": "array", "items": ID},
                        "ship_notice": {
                            "type": "object",
                            "properties": {"id": ID, "number": {"type": "string"}},
                        },
                        "warnings": {"type": "array", "items": {"type": "string"}},
                        "order": _ref("Order"),
                    },
                },
                "ShipNoticeSummary": {
                    "type": "object",
                    "required": ["id", "number", "state"],
                    "properties": {
                        "id": ID,
                        "number": {"type": "string"},
                        "state": {"type": "string", "enum": [s.value for s in ShipNoticeState]},
                        "ship_date": DAY,
                        "expected_arrival": DAY,
                        "carrier": {"type": "string"},
                        "tracking_number": {"type": "string"},
                        "packing_slip_url": {"type": "string", "description": "Where its packing slip (PDF) is."},
                        "lines": {
                            "type": "array",
                            "description": "What it ships of each order line, and what of that has arrived so far "
                            "(receipts matched to the notice: those naming it first, the others by date).",
                            "items": {
                                "type": "object",
                                "required": ["line_id", "quantity", "received_quantity"],
                                "properties": {"line_id": ID, "quantity": DECIMAL, "received_quantity": DECIMAL},
                            },
                        },
                    },
                },
                "Message": {
                    "type": "object",
                    "required": ["id", "author", "from_supplier", "body", "created_at", "files"],
                    "properties": {
                        "id": ID,
                        "author": {"type": "string"},
                        "from_supplier": {"type": "boolean"},
                        "body": {"type": "string", "description": "Empty when the message is only files."},
                        "created_at": {"type": "string", "format": "date-time"},
                        "files": {"type": "array", "items": _ref("MessageFile")},
                    },
                },
                "MessageFile": {
                    "type": "object",
                    "required": ["id", "name", "size", "content_type", "url"],
                    "properties": {
                        "id": ID,
                        "name": {"type": "string"},
                        "size": {"type": "integer", "minimum": 1},
                        "content_type": {"type": "string", "enum": ATTACHMENT_TYPES},
                        "url": {"type": "string", "description": "Where the file itself is."},
                    },
                },
                **_certificate_schemas(),
                "Error": error,
                "Conflict": {
                    "allOf": [
                        _ref("Error"),
                        {"type": "object", "required": ["order"], "properties": {"order": _ref("Order")}},
                    ]
                },
            },
        },
    }


DOCUMENT_ID = {"name": "document_id", "in": "path", "required": True, "schema": ID}
NOT_FOUND = _json(_ref("Error"), "No such document in this key's supplier account.")


def _certificate_paths() -> dict[str, Any]:
    upload = {
        "type": "object",
        "required": ["document_type", "title", "file"],
        "additionalProperties": False,
        "properties": {
            "document_type": {"type": "string", "minLength": 1, "maxLength": 32, "description": "A type's code."},
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "issuer": {"type": "string", "maxLength": 200},
            "certificate_number": {"type": "string", "maxLength": 80},
            "issue_date": DAY,
            "expiry_date": DAY,
            "replaces": {**ID, "description": "The id of the account's document this one replaces once approved."},
            "file": {"type": "string", "format": "binary", "description": f"PDF, PNG or JPEG, up to {_MB} MB."},
        },
    }
    return {
        "/compliance": {
            "get": {
                "summary": "The customer's document requirements, their state, and whether they block confirmations",
                "responses": {"200": _json(_ref("Compliance"), "The requirements and document types."), **ERRORS},
            }
        },
        "/documents": {
            "get": {
                "summary": "The supplier account's certificates, newest first, 50 a page",
                "parameters": [
                    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100000}}
                ],
                "responses": {"200": _json(_ref("DocumentList"), "One page of documents."), **ERRORS},
            },
            "post": {
                "summary": "Upload a certificate for review",
                "parameters": [IDEMPOTENCY_KEY],
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": upload}}},
                "responses": {
                    "201": _json(
                        {"type": "object", "required": ["document"], "properties": {"document": _ref("Document")}},
                        "Stored, waiting for review (Location: its address).",
                    ),
                    **ERRORS,
                    "409": _json(_ref("Error"), "The same Idempotency-Key is in use by another request right now."),
                    "413": _json(_ref("Error"), f"The file is larger than {_MB} MB."),
                    "422": _json(_ref("Error"), "A field or the file breaks a rule (by field in error.fields)."),
                    "503": _json(_ref("Error"), "The virus scanner could not check the file: nothing stored."),
                },
            },
        },
        "/documents/{document_id}": {
            "get": {
                "summary": "One certificate, with its reviews",
                "parameters": [DOCUMENT_ID],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["document", "reviews"],
                            "properties": {
                                "document": _ref("Document"),
                                "reviews": {"type": "array", "items": _ref("Review")},
                            },
                        },
                        "The document.",
                    ),
                    "404": NOT_FOUND,
                    **ERRORS,
                },
            }
        },
        "/documents/{document_id}/file": {
            "get": {
                "summary": "One certificate's file",
                "parameters": [DOCUMENT_ID],
                "responses": {
                    "200": CERTIFICATE_FILE,
                    "404": NOT_FOUND,
                    **ERRORS,
                },
            }
        },
    }


def _certificate_schemas() -> dict[str, Any]:
    doc_type = {
        "type": "object",
        "required": ["code", "name"],
        "properties": {"code": {"type": "string"}, "name": {"type": "string"}},
    }
    statuses = {"type": "string", "enum": [s.value for s in DocumentStatus]}
    document = {
        "type": "object",
        "required": ["id", "document_type", "title", "status", "file", "uploaded_at", "url", "file_url"],
        "properties": {
            "id": ID,
            "document_type": _ref("DocumentType"),
            "title": {"type": "string"},
            "issuer": {"type": "string"},
            "certificate_number": {"type": "string"},
            "issue_date": {**DAY, "nullable": True},
            "expiry_date": {**DAY, "nullable": True},
            "status": statuses,
            "replaces": {**ID, "nullable": True},
            "file": {
                "type": "object",
                "required": ["name", "size", "content_type", "sha256"],
                "properties": {
                    "name": {"type": "string"},
                    "size": {"type": "integer"},
                    "content_type": {"type": "string"},
                    "sha256": {"type": "string"},
                },
            },
            "uploaded_at": {"type": "string", "format": "date-time"},
            "url": {"type": "string"},
            "file_url": {"type": "string"},
        },
    }
    requirement = {
        "type": "object",
        "required": ["document_type", "state", "detail", "document"],
        "properties": {
            "document_type": _ref("DocumentType"),
            "state": {"type": "string", "enum": list(REQUIREMENT_STATES)},
            "detail": {"type": "string"},
            "document": {
                "type": "object",
                "nullable": True,
                "required": ["id", "status", "url"],
                "properties": {
                    "id": ID,
                    "status": statuses,
                    "expiry_date": {**DAY, "nullable": True},
                    "url": {"type": "string"},
                },
            },
        },
    }
    return {
        "DocumentType": doc_type,
        "Document": document,
        "DocumentList": {
            "type": "object",
            "required": ["documents", "page", "pages", "total"],
            "properties": {
                "documents": {"type": "array", "items": _ref("Document")},
                "page": {"type": "integer"},
                "pages": {"type": "integer"},
                "total": {"type": "integer"},
            },
        },
        "Review": {
            "type": "object",
            "required": ["decision", "comment", "reviewed_at"],
            "properties": {
                "decision": {"type": "string", "enum": ["approve", "reject"]},
                "comment": {"type": "string"},
                "valid_until": {**DAY, "nullable": True},
                "reviewed_at": {"type": "string", "format": "date-time"},
            },
        },
        "Requirement": requirement,
        "Compliance": {
            "type": "object",
            "required": ["requirements", "document_types", "confirmations"],
            "properties": {
                "requirements": {"type": "array", "items": _ref("Requirement")},
                "document_types": {"type": "array", "items": _ref("DocumentType")},
                "confirmations": {
                    "type": "object",
                    "required": ["gating", "blocked", "message"],
                    "properties": {
                        "gating": {"type": "string", "enum": [g.value for g in DocumentGating]},
                        "blocked": {"type": "boolean"},
                        "message": {"type": "string", "nullable": True},
                    },
                },
            },
        },
    }
