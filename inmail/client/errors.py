"""What the client raises: refusals, with the contract's error codes."""

from __future__ import annotations


class InMailError(Exception):
    """A refusal: nothing was written. ``code`` is the contract's error code, ``message`` says why.

    Raised for the service's failure replies and for arguments the client refuses
    before sending (with the code the service would have answered).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class NoAnswer(InMailError):
    """No answer before the deadline: unlike a refusal, the command may have acted.

    The code is ``UNAVAILABLE`` because the remedy is the same: sending the command
    again with the same ``command_id`` is safe and settles the outcome.
    """

    def __init__(self, message: str) -> None:
        super().__init__("UNAVAILABLE", message)
