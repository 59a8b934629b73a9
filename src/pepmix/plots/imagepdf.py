"""A minimal PDF writer for pages that are one image each (the profile plots).

Matplotlib's PDF backend costs about 0.2-0.3 s per profile page; pages drawn once with Agg,
encoded as PNG and embedded here cost almost nothing, and a protein's page can be reused in the
PDF of every contrast it is a top hit in. The PNG's zlib stream is embedded as is (PDF's
``FlateDecode`` with PNG predictors reads it directly), so nothing is re-encoded. No dates or
producer strings are written: the same pages give the same bytes.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from pepmix.io import atomic_path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def encode_png(rgb: NDArray[np.uint8], compress_level: int = 3, dpi: float | None = None) -> bytes:
    """Encode an RGB image (height, width, 3) as PNG bytes without metadata.

    Rows are stored unfiltered (PNG filter type 0) and deflated at ``compress_level``: for
    figures (large flat areas) that is about as small as adaptive filtering and two to three
    times faster to write. The same image always gives the same bytes.

    Parameters
    ----------
    rgb : ndarray, shape (height, width, 3 or 4)
        8-bit image (a fourth, alpha channel is dropped).
    compress_level : int, default 3
        zlib level.
    dpi : float, optional
        Resolution to record (a ``pHYs`` chunk).
    """
    height, width = rgb.shape[:2]
    rows = np.empty((height, 3 * width + 1), dtype=np.uint8)
    rows[:, 0] = 0  # filter type: none
    rows[:, 1:].reshape(height, width, 3)[...] = rgb[..., :3]  # one copy, also from RGBA views
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    parts = [PNG_SIGNATURE, _chunk(b"IHDR", header)]
    if dpi is not None:
        per_metre = round(dpi / 0.0254)
        parts.append(_chunk(b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1)))
    parts += [_chunk(b"IDAT", zlib.compress(rows.tobytes(), compress_level)), _chunk(b"IEND", b"")]
    return b"".join(parts)


PALETTE_SIZE = 128
"""Colours of an indexed PNG (:func:`encode_png_indexed`): a figure's flat colours plus enough
shades for anti-aliased edges; 256 colours make the files about 10 % larger and look the same."""


def encode_png_indexed(
    rgb: NDArray[np.uint8], compress_level: int = 9, dpi: float | None = None
) -> bytes:
    """Encode an RGB image as an 8-bit indexed (palette) PNG without metadata.

    A figure has few colours apart from anti-aliased edges, so :data:`PALETTE_SIZE` colours
    lose nothing a reader sees, and the file is about a third of the RGB one (one byte a pixel
    instead of three, longer runs for the deflater). The palette is chosen by median cut
    (Heckbert 1982, Pillow's ``MEDIANCUT``) after white and the image's flat colours
    (:func:`_median_cut_palette`); pixels are mapped to it by Pillow without dithering
    (dithering adds noise to flat areas), and every pixel whose colour is in the palette keeps
    it exactly (backgrounds, markers, bars, lines and text keep their colour; only anti-aliased
    edge pixels may move to a near colour). The same image always gives the same bytes.

    Parameters
    ----------
    rgb : ndarray, shape (height, width, 3 or 4)
        8-bit image (a fourth, alpha channel is dropped).
    compress_level : int, default 9
        zlib level: 9 makes the report's figures 5-10 % smaller than 6 (the demo's 22 PNGs:
        560 against 603 kB) for ~20 ms more per figure.
    dpi : float, optional
        Resolution to record (a ``pHYs`` chunk).
    """
    from PIL import Image

    pixels = np.ascontiguousarray(rgb[..., :3])
    height, width = pixels.shape[:2]
    palette = _median_cut_palette(pixels)
    target = Image.new("P", (1, 1))
    target.putpalette(palette.ravel().tolist())
    mapped = Image.fromarray(pixels, mode="RGB").quantize(palette=target, dither=Image.Dither.NONE)
    index = np.asarray(mapped, dtype=np.uint8)
    codes = _colour_codes(pixels)
    exact = np.full(1 << 24, -1, dtype=np.int16)
    exact[_colour_codes(palette)] = np.arange(len(palette), dtype=np.int16)
    hits = exact[codes]
    rows = np.empty((height, width + 1), dtype=np.uint8)
    rows[:, 0] = 0  # filter type: none
    rows[:, 1:] = np.where(hits >= 0, hits, index)
    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)
    parts = [PNG_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"PLTE", palette.tobytes())]
    if dpi is not None:
        per_metre = round(dpi / 0.0254)
        parts.append(_chunk(b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1)))
    parts += [_chunk(b"IDAT", zlib.compress(rows.tobytes(), compress_level)), _chunk(b"IEND", b"")]
    return b"".join(parts)


def _colour_codes(pixels: NDArray[np.uint8]) -> NDArray[np.uint32]:
    """``r << 16 | g << 8 | b`` of every pixel (last axis: RGB)."""
    channels = pixels.astype(np.uint32)
    red, green, blue = channels[..., 0], channels[..., 1], channels[..., 2]
    codes = (red << 16) | (green << 8) | blue
    return codes.astype(np.uint32, copy=False)


FLAT_MIN = 4
"""A colour seen at least this often in the every-other-pixel sample (about 16 pixels of the
image) is a flat colour (a marker, a bar, a line, text) and gets its own palette entry."""


def _median_cut_palette(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """At most :data:`PALETTE_SIZE` distinct colours: white, the flat colours, then median cut.

    The flat colours (up to half the palette, the most frequent first) are taken exactly, so a
    small marker keeps its hue even when the median cut, which splits by pixel counts, would
    merge it into a larger box of other colours; the median cut of every third row and column
    fills the rest of the palette with shades of the anti-aliased edges.
    """
    from PIL import Image

    codes = _colour_codes(pixels[::2, ::2]).ravel()
    distinct, counts = np.unique(codes, return_counts=True)
    frequent = distinct[counts >= FLAT_MIN]
    frequent = frequent[np.argsort(-counts[counts >= FLAT_MIN], kind="stable")]
    frequent = frequent[frequent != 0xFFFFFF][:2000]
    flat = _distinct_colours(
        np.column_stack([frequent >> 16, (frequent >> 8) & 255, frequent & 255]),
        PALETTE_SIZE // 2,
    )
    frequent = _colour_codes(flat)
    sample = Image.fromarray(np.ascontiguousarray(pixels[::3, ::3]), mode="RGB")
    room = max(PALETTE_SIZE - 1 - len(flat), 1)
    cut = sample.quantize(colors=room, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    found = np.array(cut.getpalette() or [], dtype=np.uint8).reshape(-1, 3)
    used = found[np.unique(np.asarray(cut))] if found.size else found
    extra = used[~np.isin(_colour_codes(used), np.append(frequent, 0xFFFFFF))]
    extra = np.unique(extra, axis=0) if len(extra) else extra
    white = np.full((1, 3), 255, dtype=np.uint8)
    return np.vstack([white, flat.astype(np.uint8), extra])[:PALETTE_SIZE]


def _distinct_colours(colours: NDArray[np.integer], limit: int, gap: int = 8) -> NDArray[np.uint8]:
    """The first ``limit`` colours (in the given order) that differ from every earlier chosen one
    by more than ``gap`` in some channel: one entry per flat colour, not one per shade of an
    anti-aliasing ramp (the median cut covers those)."""
    chosen = np.empty((0, 3), dtype=np.int64)
    for colour in colours.astype(np.int64):
        if len(chosen) and np.min(np.max(np.abs(chosen - colour), axis=1)) <= gap:
            continue
        chosen = np.vstack([chosen, colour])
        if len(chosen) == limit:
            break
    return chosen.astype(np.uint8)


def png_image_data(png: bytes) -> tuple[int, int, bytes]:
    """Width, height and concatenated IDAT data of an 8-bit RGB, non-interlaced PNG."""
    if not png.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG image")
    pos = len(PNG_SIGNATURE)
    width = height = 0
    data = io.BytesIO()
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        body = png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or color != 2 or interlace != 0:
                raise ValueError("only 8-bit RGB non-interlaced PNGs are supported")
        elif kind == b"IDAT":
            data.write(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    return width, height, data.getvalue()


def write_image_pdf(
    path: str | Path, pages: Sequence[bytes], width_in: float, height_in: float
) -> None:
    """Write a PDF with one full-page image per page.

    Parameters
    ----------
    path : str or pathlib.Path
        Output file (written atomically).
    pages : sequence of bytes
        PNG images (8-bit RGB), one per page.
    width_in, height_in : float
        Page size in inches.
    """
    w_pt, h_pt = 72.0 * width_in, 72.0 * height_in
    objects: list[bytes] = []  # object k + 1

    def add(payload: bytes) -> int:
        objects.append(payload)
        return len(objects)

    catalog = add(b"")  # filled below
    tree = add(b"")
    kids = []
    for png in pages:
        width, height, idat = png_image_data(png)
        image = add(
            b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
            b"/BitsPerComponent 8 /Filter /FlateDecode /DecodeParms << /Predictor 15 /Colors 3 "
            b"/BitsPerComponent 8 /Columns %d >> /Length %d >>\nstream\n"
            % (width, height, width, len(idat))
            + idat
            + b"\nendstream"
        )
        content = b"q %.2f 0 0 %.2f 0 0 cm /Im0 Do Q" % (w_pt, h_pt)
        stream = zlib.compress(content)
        contents = add(
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream)
            + stream
            + b"\nendstream"
        )
        kids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %.2f %.2f] "
                b"/Resources << /XObject << /Im0 %d 0 R >> >> /Contents %d 0 R >>"
                % (tree, w_pt, h_pt, image, contents)
            )
        )
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % tree
    objects[tree - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids),
        len(kids),
    )
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, payload in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + payload + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n"
        % (len(objects) + 1, catalog, xref)
    )
    with atomic_path(path) as tmp:
        tmp.write_bytes(out.getvalue())
