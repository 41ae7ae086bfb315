"""How the simulated node says no: the gRPC status and the text lnd answers in the same case."""

from __future__ import annotations

import grpc


class Refused(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def unknown(message: str) -> Refused:
    """lnd returns most plain Go errors as UNKNOWN with the error's text."""
    return Refused(grpc.StatusCode.UNKNOWN, message)
