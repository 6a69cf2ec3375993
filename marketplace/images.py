"""Checks for images partners upload (logos, screenshots): decoded, never trusted by name.

Partner images are shown to customers from our own origin, so only raster formats that
cannot carry script are stored (PNG, JPEG, WebP); SVG is refused. The check decodes the
bytes, so a renamed file or a declared content type changes nothing, and it caps both the
byte size and the pixel size before any full decode (a small file can claim huge pixels).
"""

import io

from PIL import Image, UnidentifiedImageError

from common.errors import InvalidInput

IMAGE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
FORMAT_WORDS = "a PNG, JPEG or WebP image"


def _looks_like_svg(data: bytes) -> bool:
    """Text that opens like XML/SVG: named in the refusal, since SVG is the format partners
    most often try (binary formats never start with "<")."""
    head = data[:1024].removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    return head.startswith(b"<") and b"<svg" in head


def check_image(
    data: bytes,
    *,
    what: str,
    field: str,
    code: str,
    max_bytes: int,
    min_side: int,
    max_side: int,
    too_large_code: str | None = None,
) -> str:
    """Returns the content type of `data`, or raises InvalidInput saying what is wrong.

    `what` names the image in messages ("The screenshot"); `code` is the error code of a
    refused image, `<code>_too_large` when it is too heavy.
    """
    if len(data) > max_bytes:
        size = (
            f"{max_bytes // (1024 * 1024)} MB"
            if max_bytes >= 1024 * 1024
            else (f"{max_bytes // 1024} KB")
        )
        raise InvalidInput(
            f"{what} may be at most {size}.",
            field=field,
            code=too_large_code or f"{code}_too_large",
        )
    if not data:
        raise InvalidInput(f"{what} is an empty file.", field=field, code=code)
    if _looks_like_svg(data):
        raise InvalidInput(
            f"{what} must be {FORMAT_WORDS}; SVG is refused (it can carry script).",
            field=field,
            code=code,
        )
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format
            width, height = image.size
            image.verify()
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        SyntaxError,
        ValueError,
    ) as error:
        raise InvalidInput(
            f"{what} is not an image we can read: it must be {FORMAT_WORDS}.",
            field=field,
            code=code,
        ) from error
    if image_format not in IMAGE_FORMATS:
        raise InvalidInput(
            f"{what} must be {FORMAT_WORDS}, not {image_format or 'this format'}.",
            field=field,
            code=code,
        )
    if not (min(width, height) >= min_side and max(width, height) <= max_side):
        raise InvalidInput(
            f"{what} must be {min_side}-{max_side} pixels a side (it is {width}x{height}).",
            field=field,
            code=code,
        )
    # verify() checks structure only; decoding the pixels (now known to be of a bounded
    # size) catches truncated or corrupt data that a browser would show broken.
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise InvalidInput(
            f"{what} is damaged: its pixels cannot be decoded.", field=field, code=code
        ) from error
    return IMAGE_FORMATS[image_format]
