"""The OpenAPI 3.1 document, generated from the route table so it cannot drift from the routes.

`packstation openapi --write docs/openapi.json` refreshes the committed copy; a test checks the
copy is current and valid.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from station.api.server import Route

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "HTTP reason phrase."},
        "message": {"type": "string", "description": "What was wrong, in one sentence."},
    },
}


def openapi_document(routes: Sequence[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "packstation Station API",
            "version": "1",
            "description": "Local HTTP API of one packing station: state, session control, "
            "label permission for the shipping software, evidence, health and metrics. Binds to "
            "localhost by default. Changing actions and evidence need the station's bearer token.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "stationToken": {"type": "http", "scheme": "bearer"},
            },
        },
    }


def _operation(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": f"{route.method.lower()}{_camel(route.path)}",
        "summary": route.summary,
        "tags": [route.tag],
        "responses": {str(code): _response(route, code) for code in route.responses},
    }
    if route.auth == "token":
        operation["security"] = [{"stationToken": []}]
    if route.auth == "reviewer":
        operation["description"] = "Authorised by the reviewer's badge and PIN in the body."
    if route.query or route.optional_query:
        operation["parameters"] = [
            {"name": name, "in": "query", "required": required, "schema": {"type": "string"}}
            for names, required in ((route.query, True), (route.optional_query, False))
            for name in names
        ]
    if route.body is not None:
        schemas[route.body.__name__] = route.body.model_json_schema()
        ref = {"$ref": f"#/components/schemas/{route.body.__name__}"}
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref}},
        }
    return operation


def _response(route: Route, code: int) -> dict[str, Any]:
    response: dict[str, Any] = {"description": HTTPStatus(code).phrase}
    if code >= 400:
        error = {"$ref": "#/components/schemas/Error"}
        response["content"] = {"application/json": {"schema": error}}
    elif code == 200:
        kind = route.content_type.split(";")[0]
        schema = {"type": "object"} if kind == "application/json" else {"type": "string"}
        response["content"] = {kind: {"schema": schema}}
    return response


def _camel(path: str) -> str:
    parts = [p for p in path.replace(".", "/").replace("-", "/").split("/") if p]
    return "".join(p[:1].upper() + p[1:] for p in parts) or "Root"


# -- command line ----------------------------------------------------------------------------


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    command = subparsers.add_parser("openapi", help="print or write the Station API's OpenAPI")
    command.add_argument("--write", type=Path, help="write to this file instead of printing")
    command.set_defaults(func=run_openapi)


def render() -> str:
    from station.api.server import ROUTES

    return json.dumps(openapi_document(list(ROUTES)), indent=2, ensure_ascii=False) + "\n"


def run_openapi(args: argparse.Namespace) -> int:
    text = render()
    if args.write:
        args.write.write_text(text)
    else:
        print(text, end="")
    return 0
