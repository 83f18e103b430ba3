"""``GET /v1/ws``: authenticates the WebSocket, then hands it to the feed. Browsers cannot set
headers on a WebSocket, so ``?access_token=`` is accepted too (it may appear in access logs;
prefer the header where you can)."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from api.errors import ApiError
from api.feed import CLOSE_CODES
from api.services import Services
from streams.errors import PlatformError

__all__ = ["router"]

router = APIRouter()


@router.websocket("/v1/ws")
async def live_feed(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    token = websocket.query_params.get("access_token")
    authorization = websocket.headers.get("authorization") or (f"Bearer {token}" if token else None)
    await websocket.accept()
    try:
        principal = services.keys.authenticate(authorization)
        feed = services.kafka().feed
    except ApiError as error:
        await websocket.close(CLOSE_CODES["unauthenticated"], error.message[:120])
        return
    except PlatformError as error:
        await websocket.close(CLOSE_CODES["unavailable"], error.message[:120])
        return
    await feed.serve(websocket, principal.tenant)
