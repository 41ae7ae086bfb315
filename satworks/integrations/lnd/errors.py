"""lnd's refusals in satworks' error tree; the module ``rpc_errors`` converts gRPC's status codes into them.

No gRPC here, so code that only names these errors (the worker's jobs) imports them without it.
"""

from __future__ import annotations

from satworks.errors import PermanentError


class LndError(PermanentError):
    """lnd refused the call; ``grpc_code`` is the status code's name (``"UNKNOWN"``, ...)."""

    code = "lnd_error"

    def __init__(self, message: str, *, grpc_code: str | None = None) -> None:
        super().__init__(message, details={"grpc_code": grpc_code} if grpc_code else None)
        self.grpc_code = grpc_code


class LndAuthFailed(LndError):
    """The macaroon is missing, wrong or lacks a permission: fix the configuration."""

    code = "lnd_auth_failed"


class LndNotFound(LndError):
    """No such invoice (LookupInvoice) or payment (TrackPaymentV2)."""

    code = "lnd_not_found"


class LndAlreadyExists(LndError):
    """An invoice with this payment hash exists, or this payer already paid (or is paying) the hash."""

    code = "lnd_already_exists"


class LndConfigError(LndError):
    """The certificate or macaroon given to the client cannot be used."""

    code = "lnd_config_error"
