"""Upload routes: prepare train/test uploads with server-side dedup, and the signed-URL storage."""

from __future__ import annotations

import io
import time
from typing import Any

import pandas as pd

from .context import Context
from .state import FileSlot, Upload
from .wire import (
    HTTPFail,
    Request,
    Response,
    error,
    field_obj,
    field_uuid,
    invalid_input,
    new_id,
    not_found,
    ok,
)

STORAGE_PREFIX = "/_storage/"
URL_TTL_S = 3600.0
TRAIN_FILES = ("x_train", "y_train")
TEST_FILES = ("x_test",)


def read_parquet(data: bytes, what: str) -> pd.DataFrame:
    """An uploaded file as a frame, or 400 INVALID_INPUT when it is not readable parquet."""
    try:
        return pd.read_parquet(io.BytesIO(data))
    except Exception as exc:
        raise invalid_input(f"{what} is not a readable parquet file") from exc


def _file_hash(body: dict[str, Any], name: str) -> str | None:
    """The dedup hash of a FileInfo (None when the client disabled dedup)."""
    info = field_obj(body, name)
    if info.get("format") != "parquet":
        raise invalid_input(f"{name}.format must be 'parquet'")
    digest = info.get("hash")
    if digest is not None and not isinstance(digest, str):
        raise HTTPFail(error(422, f"{name}.hash must be a string"))
    return digest


def _upload_info(req: Request, upload_id: str, name: str, chunks: int) -> dict[str, Any]:
    """A FileUploadInfo whose signed URLs point back at this server's storage routes."""
    return {
        "signed_urls": [
            f"{req.host_url}{STORAGE_PREFIX}{upload_id}/{name}/{i}" for i in range(chunks)
        ],
        "expires_at": time.time() + URL_TTL_S,
        "required_headers": {"Content-Type": "application/octet-stream"},
    }


def prepare_train_set_upload(ctx: Context, req: Request) -> Response:
    """Hand out signed URLs, or 409 with the old id when this account uploaded the same files."""
    body = req.json()
    x_hash, y_hash = _file_hash(body, "x_train_info"), _file_hash(body, "y_train_info")
    owner = req.owner
    if not body.get("force_reupload") and x_hash and y_hash:
        with ctx.store.lock:
            existing = ctx.store.train_dedup.get((owner, x_hash, y_hash))
        if existing is not None:
            return error(
                409,
                "This train set was already uploaded",
                "DUPLICATE_TRAIN_SET_UPLOAD",
                train_set_upload_id=existing,
            )
    chunks = ctx.config.get().chunks
    upload = Upload(
        id=new_id(),
        owner=owner,
        files={"x_train": FileSlot(chunks, x_hash), "y_train": FileSlot(chunks, y_hash)},
    )
    ctx.store.add_upload(upload)
    req.refs.append(upload.id)
    return ok(
        {
            "train_set_upload_id": upload.id,
            "x_train_info": _upload_info(req, upload.id, "x_train", chunks),
            "y_train_info": _upload_info(req, upload.id, "y_train", chunks),
        }
    )


def prepare_test_set_upload(ctx: Context, req: Request) -> Response:
    """Signed URLs for a test set; 404 NOT_FOUND if the fitted set is not the caller's."""
    body = req.json()
    fitted_id = field_uuid(body, "fitted_train_set_id")
    x_hash = _file_hash(body, "x_test_info")
    owner = req.owner
    req.refs.append(fitted_id)
    if ctx.store.owned_fitted(fitted_id, owner) is None:
        raise not_found(f"Fitted train set {fitted_id}")
    if not body.get("force_reupload") and x_hash:
        with ctx.store.lock:
            existing = ctx.store.test_dedup.get((owner, fitted_id, x_hash))
        if existing is not None:
            return error(
                409,
                "This test set was already uploaded",
                "DUPLICATE_TEST_SET_UPLOAD",
                test_set_upload_id=existing,
            )
    chunks = ctx.config.get().chunks
    upload = Upload(
        id=new_id(), owner=owner, files={"x_test": FileSlot(chunks, x_hash)}, fitted_id=fitted_id
    )
    ctx.store.add_upload(upload)
    req.refs.append(upload.id)
    return ok(
        {
            "test_set_upload_id": upload.id,
            "x_test_info": _upload_info(req, upload.id, "x_test", chunks),
        }
    )


def storage_put(ctx: Context, req: Request) -> Response:
    """Receive one chunk at a signed URL; like GCS, success is HTTP 200 with an empty body."""
    parts = req.path[len(STORAGE_PREFIX) :].split("/")
    if len(parts) != 3 or parts[1] not in TRAIN_FILES + TEST_FILES or not parts[2].isdigit():
        return error(404, "No such storage object")
    upload_id, name, index = parts[0], parts[1], int(parts[2])
    req.refs.append(upload_id)
    if not ctx.store.put_chunk(upload_id, name, index, req.body):
        return error(404, "No such storage object")
    return Response(status=200)
