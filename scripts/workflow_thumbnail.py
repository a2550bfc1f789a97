"""The template browser's thumbnail of a UI workflow: the graph's stage groups, nodes and links, drawn small.

Made from the UI workflow itself, so it needs no weights, no server and no run, and it changes only when
the graph does.
"""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

SIZE = (512, 384)
TITLE_BAND = 84  # the title's two lines and the stage names above the groups
MARGIN = 12
BACKGROUND, NODE_FILL, NODE_EDGE, LINK, TEXT = "#202020", "#353535", "#5a5a5a", "#9a9a9a", "#eeeeee"


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _wrapped(draw: ImageDraw.ImageDraw, text: str, font, width: int, lines: int) -> list[str]:
    out, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if draw.textlength(trial, font=font) <= width or not line:
            line = trial
        else:
            out.append(line)
            line = word
    out.append(line)
    if len(out) > lines:
        out = out[:lines]
        out[-1] = out[-1].rstrip(".,;") + "..."
    return out


def _bounds(workflow: dict) -> tuple[float, float, float, float]:
    boxes = [g["bounding"] for g in workflow.get("groups", [])]
    boxes += [[*n["pos"], *n["size"]] for n in workflow["nodes"] if n["type"] != "Note"]
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[0] + b[2] for b in boxes),
        max(b[1] + b[3] for b in boxes),
    )


def draw_thumbnail(workflow: dict, title: str) -> Image.Image:
    """A SIZE picture: the title on top, below it the graph fitted to the picture (the Note left out)."""
    image = Image.new("RGB", SIZE, BACKGROUND)
    draw = ImageDraw.Draw(image)
    title_font = _font(22)
    for row, line in enumerate(_wrapped(draw, title, title_font, SIZE[0] - 2 * MARGIN, 2)):
        draw.text((MARGIN, 6 + row * 26), line, fill=TEXT, font=title_font)
    x0, y0, x1, y1 = _bounds(workflow)
    scale = min((SIZE[0] - 2 * MARGIN) / (x1 - x0), (SIZE[1] - TITLE_BAND - MARGIN) / (y1 - y0))
    left = (SIZE[0] - (x1 - x0) * scale) / 2

    def at(x: float, y: float) -> tuple[float, float]:
        return left + (x - x0) * scale, TITLE_BAND + (y - y0) * scale

    for group in workflow.get("groups", []):
        gx, gy, gw, gh = group["bounding"]
        draw.rectangle([at(gx, gy), at(gx + gw, gy + gh)], fill=_dim(group["color"]), outline=group["color"], width=2)
        _stage_label(draw, group["title"], at(gx, gy), gw * scale)
    nodes = {n["id"]: n for n in workflow["nodes"] if n["type"] != "Note"}
    for link in workflow.get("links", []):
        src, dst = nodes.get(link[1]), nodes.get(link[3])
        if src and dst:
            start = at(src["pos"][0] + src["size"][0], src["pos"][1] + 40 + 26 * link[2])
            end = at(dst["pos"][0], dst["pos"][1] + 40 + 26 * link[4])
            draw.line([start, end], fill=LINK, width=1)
    for node in nodes.values():
        nx, ny = node["pos"]
        draw.rounded_rectangle(
            [at(nx, ny), at(nx + node["size"][0], ny + node["size"][1])], radius=3, fill=NODE_FILL, outline=NODE_EDGE
        )
    return image


def _stage_label(draw: ImageDraw.ImageDraw, text: str, corner: tuple[float, float], width: float) -> None:
    """The stage's name above its box, on up to two lines in the largest font that fits the box's width."""
    for size in range(14, 6, -1):
        font = _font(size)
        lines = _wrapped(draw, text, font, round(width), 2)
        if all(draw.textlength(line, font=font) <= width for line in lines) and not lines[-1].endswith("..."):
            break
    for row, line in enumerate(reversed(lines)):
        draw.text((corner[0] + 1, corner[1] - (row + 1) * (size + 2) - 2), line, fill=TEXT, font=font)


def _dim(color: str) -> str:
    """The group's colour at a third of its brightness, as the frontend fills group boxes."""
    hex_digits = color.lstrip("#")
    if len(hex_digits) == 3:
        hex_digits = "".join(c * 2 for c in hex_digits)
    r, g, b = (int(hex_digits[i : i + 2], 16) // 3 for i in (0, 2, 4))
    return f"#{r:02x}{g:02x}{b:02x}"
