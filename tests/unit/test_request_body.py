"""Reading a request body: a client that goes away mid-body is its bad request, not our 500."""

from __future__ import annotations

import asyncio
from unittest import mock

import pytest
from aiohttp import streams
from aiohttp.test_utils import make_mocked_request

from satworks.errors import BadRequest
from satworks.http.requests import raw_body


async def test_a_body_cut_short_by_a_lost_connection_is_a_bad_request() -> None:
    payload = streams.StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    payload.feed_data(b'{"type": "canary", "pay')
    request = make_mocked_request("POST", "/v1/jobs", headers={"Content-Length": "1000"}, payload=payload)
    payload.set_exception(ConnectionResetError("Connection lost"))  # what aiohttp does when the peer goes

    with pytest.raises(BadRequest, match="connection closed before the body was complete"):
        await raw_body(request, max_bytes=65_536)
