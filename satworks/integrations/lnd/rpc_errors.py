"""gRPC errors converted into satworks' tree: ``grpc.RpcError`` never leaves ``integrations/lnd``.

Transient (``NodeUnavailable``, retried by the caller's backoff): UNAVAILABLE (node down, connection
refused or dropped), DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, and CANCELLED, which a client only sees
when the node cancels calls while shutting down (we never cancel a unary call ourselves, and a
stream we closed ends quietly). One UNAVAILABLE is permanent: the node's certificate is not the
configured one (CERTIFICATE_VERIFY_FAILED), which no retry mends. Everything else is permanent too:
asking again will not change lnd's answer. lnd reports most refusals as UNKNOWN with its Go error
text, so a few texts are recognised.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from satworks.errors import NodeUnavailable, SatworksError
from satworks.integrations.lnd.errors import LndAlreadyExists, LndAuthFailed, LndConfigError, LndError, LndNotFound

TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,
    }
)
AUTH_CODES = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})
# lnd answers UNKNOWN with these texts (macaroons/service.go, invoices/errors.go).
_AUTH_TEXTS = ("macaroon", "verification failed", "permission denied")
_DUPLICATE_INVOICE_TEXT = "invoice with payment hash already exists"
_UNTRUSTED_CERT_TEXT = "CERTIFICATE_VERIFY_FAILED"  # BoringSSL's reason, in grpc's UNAVAILABLE details


def convert(exc: grpc.RpcError, method: str) -> SatworksError:
    """The satworks error for a failed call of ``method`` (e.g. ``"LookupInvoice"``)."""
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (exc.details() if isinstance(exc, grpc.Call) else None) or ""
    message = f"lnd {method}: {code.name}: {details}" if details else f"lnd {method}: {code.name}"
    if code is grpc.StatusCode.UNAVAILABLE and _UNTRUSTED_CERT_TEXT in details:
        return LndConfigError(f"the node's TLS certificate is not the configured one ({message})", grpc_code=code.name)
    if code in TRANSIENT_CODES:
        return NodeUnavailable(message, details={"grpc_code": code.name, "method": method})
    lowered = details.lower()
    if code in AUTH_CODES or (code is grpc.StatusCode.UNKNOWN and any(t in lowered for t in _AUTH_TEXTS)):
        return LndAuthFailed(f"lnd refused our credentials ({message}); check the macaroon", grpc_code=code.name)
    if code is grpc.StatusCode.NOT_FOUND:
        return LndNotFound(message, grpc_code=code.name)
    if code is grpc.StatusCode.ALREADY_EXISTS or _DUPLICATE_INVOICE_TEXT in lowered:
        return LndAlreadyExists(message, grpc_code=code.name)
    return LndError(message, grpc_code=code.name)


@contextmanager
def rpc_errors(method: str) -> Iterator[None]:
    """Convert any ``grpc.RpcError`` raised inside into our tree (``raise ... from exc``)."""
    try:
        yield
    except grpc.RpcError as exc:
        raise convert(exc, method) from exc
