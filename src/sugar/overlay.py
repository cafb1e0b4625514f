"""The answer drawn over the video it came from: skeletons on the frames, the label and description above.

Pillow draws on the frames the pose front end kept (already shrunk), so this needs no matplotlib figure per
frame and stays cheap enough for the service. Writes a GIF (Pillow) or an MP4 (PyAV's H.264 encoder).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sugar.errors import SugarError
from sugar.skeleton.layouts import Layout, get_layout

COLOURS = ((230, 57, 70), (29, 119, 180), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75))
MIN_VISIBILITY = 0.3  # joints the estimator barely saw are not drawn
SUFFIXES = (".gif", ".mp4")


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _banner(width: int, label: str | None, description: str | None) -> Image.Image:
    """White strip with the label (bold line) and the wrapped description."""
    title, body = _font(18), _font(13)
    chars = max(20, width // 7)
    lines = textwrap.wrap(description or "", chars)[:3]
    banner = Image.new("RGB", (width, 30 + 17 * len(lines)), (255, 255, 255))
    draw = ImageDraw.Draw(banner)
    draw.text((8, 5), label or "?", fill=(0, 0, 0), font=title)
    for i, line in enumerate(lines):
        draw.text((8, 28 + 17 * i), line, fill=(60, 60, 60), font=body)
    return banner


def draw_skeletons(image: Image.Image, points: np.ndarray, layout: Layout, scale: float) -> Image.Image:
    """points [M, V, 3] (x, y in the original frame's pixels, visibility) drawn onto a copy of the image."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    r = max(2, round(image.width / 160))
    for m, person in enumerate(points):
        if not person[:, :2].any():
            continue  # absent
        colour = COLOURS[m % len(COLOURS)]
        xy, vis = person[:, :2] * scale, person[:, 2]
        for a, b in layout.bones:
            if vis[a] >= MIN_VISIBILITY and vis[b] >= MIN_VISIBILITY:
                draw.line([tuple(xy[a]), tuple(xy[b])], fill=colour, width=max(2, r - 1))
        for v in np.nonzero(vis >= MIN_VISIBILITY)[0]:
            x, y = xy[v]
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255), outline=colour)
    return out


def render_overlay(frames: Sequence[tuple[int, Image.Image]], points: np.ndarray, layout: Layout | str,
                   source_width: int, path: str | Path, label: str | None = None, description: str | None = None,
                   fps: float = 10.0) -> Path:
    """Animate kept frames (frame index, image) with points [M, T, V, 3] drawn on them and the answer above.

    source_width: the width the points' pixel coordinates refer to (the frames may have been shrunk).
    """
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise SugarError(f"{path}: unsupported animation type {path.suffix!r}; use .gif or .mp4")
    if not frames:
        raise SugarError("no video frames were kept to draw on")
    layout = get_layout(layout)
    banner = _banner(frames[0][1].width, label, description)
    pictures = []
    for t, image in frames:
        drawn = draw_skeletons(image, points[:, t], layout, image.width / source_width)
        canvas = Image.new("RGB", (image.width, banner.height + image.height), (255, 255, 255))
        canvas.paste(banner, (0, 0))
        canvas.paste(drawn, (0, banner.height))
        pictures.append(canvas)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=round(1000 / fps), loop=0,
                         optimize=False)
    else:
        _write_mp4(pictures, path, fps)
    return path


def _write_mp4(pictures: list[Image.Image], path: Path, fps: float) -> None:
    w, h = (pictures[0].width // 2) * 2, (pictures[0].height // 2) * 2  # yuv420p needs even sides
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for pic in pictures:
            frame = av.VideoFrame.from_ndarray(np.asarray(pic.crop((0, 0, w, h))), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
