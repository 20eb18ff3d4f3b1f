"""How the sandbox fetches a photo given by URL, and refuses it the way Telegram does.

Telegram downloads the URL itself and refuses anything that does not answer 200 with an image.
The sandbox does the same, but only on loopback: tests serve their images from a local server,
and the sandbox never reaches out to the internet.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import httpx

FETCH_TIMEOUT = 3.0  # seconds; Telegram gives up on a slow server too
MAX_PHOTO_BY_URL = 5 * 1024 * 1024  # photos sent by URL are at most 5 MB
FAILED = "failed to get HTTP URL content"
NOT_AN_IMAGE = "wrong type of the web page content"


class FetchError(Exception):
    """Why a URL gave no image, as Telegram words it (without 'Bad Request: ')."""


def is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def fetch_image(url: str) -> tuple[bytes, str]:
    """The image at `url` and its media type; FetchError when there is none."""
    if not is_loopback(urlsplit(url).hostname):
        raise FetchError(FAILED)
    try:
        async with (
            httpx.AsyncClient(timeout=FETCH_TIMEOUT) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise FetchError(FAILED)
            media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if not media_type.startswith("image/"):
                raise FetchError(NOT_AN_IMAGE)
            content = bytearray()
            async for chunk in response.aiter_bytes():
                content += chunk
                if len(content) > MAX_PHOTO_BY_URL:
                    raise FetchError(FAILED)
    except httpx.HTTPError:
        raise FetchError(FAILED) from None
    return bytes(content), media_type
