"""The sandbox's bulk operations: bulkOperationRunQuery (JSONL with __parentId), staged uploads, bulkOperationRunMutation."""
from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from graphql import GraphQLSchema
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from sandboxes.shopify import graphql as gql
from sandboxes.shopify.payloads import gid, iso, parse_gid
from sandboxes.shopify.store import Store


class BulkOperations:
    """Mixed into Sandbox: operations finish `bulk_delay` seconds after they start and announce it by webhook."""

    schema: GraphQLSchema
    store: Store
    bulk_delay: float
    deliver: str
    usage: dict[str, dict[str, float]]

    def root(self, kind: str, base: str) -> dict[str, Any]:  # pragma: no cover - provided by Sandbox
        raise NotImplementedError

    def _emit(self, topic: str, payload: dict[str, Any]) -> None:  # pragma: no cover - provided by Sandbox
        raise NotImplementedError

    def _bulk_query(self, query: str, base: str) -> dict[str, Any]:
        document, errors = gql.check(self.schema, query)
        if errors or document is None:
            return {"bulkOperation": None, "userErrors": [{"field": ["query"], "message": errors[0]["message"], "code": "INVALID"}]}
        operation = gql.operation_of(document)
        connections, depth = gql.count_connections(self.schema, self.schema.query_type, operation.selection_set)
        if connections == 0 or connections > 5 or depth > 2:
            message = "Bulk queries need 1 to 5 connections nested at most 2 levels deep."
            return {"bulkOperation": None, "userErrors": [{"field": ["query"], "message": message, "code": "INVALID"}]}
        if self.deliver != "thread":
            data, exec_errors = gql.run(self.schema, document, {}, self.root("query", base))
            lines = gql.flatten(data or {})
            return {"bulkOperation": self._new_bulk("QUERY", query, lines, base, failed=bool(exec_errors)), "userErrors": []}
        # Standalone (the demo): like Shopify, answer CREATED at once and run the export in the background, so a
        # large store on a busy machine does not hold the request (and the event loop) past the client's timeout.
        view = self._new_bulk("QUERY", query, [], base)
        op = self.store.bulk_operations[int(str(view["id"]).rsplit("/", 1)[1])]
        op["computing"] = True

        def export() -> None:
            data, exec_errors = gql.run(self.schema, document, {}, self.root("query", base))
            lines = gql.flatten(data or {})
            with self.store.lock:
                op.update(body="".join(json.dumps(line, default=str) + "\n" for line in lines).encode(),
                          objects=len(lines), roots=sum(1 for line in lines if "__parentId" not in line),
                          failed=bool(exec_errors), computing=False)
        threading.Thread(target=export, daemon=True).start()
        return {"bulkOperation": view, "userErrors": []}

    def _bulk_mutation(self, mutation: str, path: str, base: str) -> dict[str, Any]:
        upload = self.store.uploads.get(path)
        if upload is None:
            return {"bulkOperation": None, "userErrors": [{"field": ["stagedUploadPath"], "message": "The staged upload was not found.", "code": "NO_SUCH_FILE"}]}
        document, errors = gql.check(self.schema, mutation)
        if errors or document is None or gql.operation_of(document).operation.value != "mutation":
            return {"bulkOperation": None, "userErrors": [{"field": ["mutation"], "message": "Invalid mutation.", "code": "INVALID_MUTATION"}]}
        lines = []
        for number, raw in enumerate(upload.decode().splitlines()):
            if raw.strip():
                data, run_errors = gql.run(self.schema, document, json.loads(raw), self.root("mutation", base))
                lines.append({"data": data, **({"errors": run_errors} if run_errors else {}), "__lineNumber": number})
        for field in gql.operation_of(document).selection_set.selections:
            entry = self.usage.setdefault(f"bulk:{field.name.value}", {"calls": 0, "cost": 0.0})  # type: ignore[attr-defined]
            entry["calls"] += len(lines)
        return {"bulkOperation": self._new_bulk("MUTATION", mutation, lines, base), "userErrors": []}

    def _new_bulk(self, kind: str, query: str, lines: list[dict[str, Any]], base: str, failed: bool = False) -> dict[str, Any]:
        ident = self.store.ids()
        body = "".join(json.dumps(line, default=str) + "\n" for line in lines).encode()
        self.store.bulk_operations[ident] = {
            "id": ident, "type": kind, "query": query, "body": body, "objects": len(lines),
            "roots": sum(1 for line in lines if "__parentId" not in line), "created": datetime.now(timezone.utc),
            "ready": time.monotonic() + self.bulk_delay, "failed": failed, "finished": False,
        }
        return {"__typename": "BulkOperation", "id": gid("BulkOperation", ident), "status": "CREATED", "type": kind}

    def _bulk_view(self, ident: str, base: str) -> dict[str, Any] | None:
        parsed = parse_gid(ident)
        op = self.store.bulk_operations.get(parsed[1]) if parsed else None
        if op is None:
            return None
        self._finish_bulk(op)
        done = op["finished"]
        status = ("FAILED" if op["failed"] else "COMPLETED") if done else "RUNNING"
        return {
            "__typename": "BulkOperation", "id": gid("BulkOperation", op["id"]), "status": status, "type": op["type"],
            "errorCode": "INTERNAL_SERVER_ERROR" if op["failed"] and done else None,
            "objectCount": str(op["objects"]) if done else "0", "rootObjectCount": str(op["roots"]) if done else "0",
            "fileSize": str(len(op["body"])) if done and op["objects"] else None,
            "url": f"{base}/sandbox/bulk/{op['id']}.jsonl" if done and op["objects"] and not op["failed"] else None,
            "partialDataUrl": None, "createdAt": iso(op["created"]), "completedAt": iso(op["created"]) if done else None,
            "query": op["query"],
        }

    def _finish_bulk(self, op: dict[str, Any]) -> None:
        if not op["finished"] and not op.get("computing") and time.monotonic() >= op["ready"]:
            op["finished"] = True
            self._emit("bulk_operations/finish", {
                "admin_graphql_api_id": gid("BulkOperation", op["id"]), "completed_at": iso(datetime.now(timezone.utc)),
                "created_at": iso(op["created"]), "error_code": "internal_server_error" if op["failed"] else None,
                "status": "failed" if op["failed"] else "completed", "type": op["type"].lower()})

    async def bulk_result(self, request: Request) -> Response:
        op = self.store.bulk_operations.get(request.path_params["ident"])
        if op is None or not op["finished"]:
            return PlainTextResponse("not found", status_code=404)
        return Response(op["body"], media_type="application/jsonl")

    def _staged(self, inputs: list[dict[str, Any]], base: str) -> dict[str, Any]:
        targets = []
        for item in inputs:
            key = self.store.new_upload_key(item["filename"])
            targets.append({"url": f"{base}/sandbox/staged-uploads", "resourceUrl": None, "parameters": [
                {"name": "Content-Type", "value": item["mimeType"]}, {"name": "success_action_status", "value": "201"},
                {"name": "acl", "value": "private"}, {"name": "key", "value": key}, {"name": "policy", "value": uuid.uuid4().hex}]})
        return {"stagedTargets": targets, "userErrors": []}

    async def staged_upload(self, request: Request) -> Response:
        form = await request.form()
        key, upload = form.get("key"), form.get("file")
        if not isinstance(key, str) or upload is None or isinstance(upload, str):
            return PlainTextResponse("<Error><Code>InvalidArgument</Code></Error>", status_code=400)
        self.store.uploads[key] = await upload.read()
        return PlainTextResponse(f"<PostResponse><Key>{key}</Key></PostResponse>", status_code=201)

