"""JetStream's replies as the store decodes them: the status header and the API's JSON answers."""

from __future__ import annotations

import msgspec

STATUS = "Status"
"""The header carrying a status (404, 408, 503, ...) on replies that hold no message."""

MAX_BATCH = 1000
"""JetStream refuses atomic batches of more than 1,000 messages."""

BATCH_DUPLICATE = 10201
"""An atomic batch holding a message id already stored: what a resent, stored batch gets."""


class ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class Ack(msgspec.Struct):
    """A publish acknowledgement: where the message (or a batch's last) landed, or an error."""

    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    count: int = 0
    error: ApiError | None = None


decode_ack = msgspec.json.Decoder(Ack).decode


class ConsumerCreated(msgspec.Struct):
    name: str = ""
    error: ApiError | None = None
