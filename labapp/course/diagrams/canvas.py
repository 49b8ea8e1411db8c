"""The drawing kit of the course diagrams: one palette, one font scale, and a Canvas that writes SVG.

Standalone, accessible SVG: a title and a description for screen readers, a fixed size so a
notebook shows it 1:1, an opaque page so dark themes keep it readable.
"""

from __future__ import annotations

from html import escape

# Okabe-Ito colours stay distinct under the common colour-vision deficiencies. Orange and sky are
# under 3:1 against white, so they fill and outline boxes but never carry an arrow.
BLUE, ORANGE, GREEN, VERMILLION = "#0072B2", "#E69F00", "#009E73", "#D55E00"
SKY, PURPLE, GREY = "#56B4E9", "#CC79A7", "#666666"
INK, MUTED, WHITE = "#222222", "#555555", "#FFFFFF"
# Pale tints keep the dark text far above 4.5:1 contrast on every fill.
TINT = {
    BLUE: "#E3EFF7",
    ORANGE: "#FCF1DA",
    GREEN: "#DFF2EC",
    VERMILLION: "#F9E6D9",
    SKY: "#E8F4FB",
    PURPLE: "#F7EAF2",
    GREY: "#F1F1F1",
    WHITE: WHITE,
}
FONT = "system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"
TITLE, TEXT, SMALL = 15, 14, 13  # px: lane titles, box names, everything else
LEADING = 18
WIDTH = 860  # every diagram shares one width so they line up in the notebook
STROKE, DASH, RADIUS = 1.5, "6 4", 6  # line width, dash pattern, corner radius
ARROW_HEAD, BADGE_R = 10, 10  # px
STACK = 6  # offset of the outline that stands for "more of these"
INSET = 16  # left and right margin of text inside a lane or box

Point = tuple[float, float]


def _num(v: float) -> str:
    """Format a coordinate without trailing zeros so the files stay small and diffable."""
    return f"{v:g}"


class Canvas:
    """Collect one diagram's elements; ids carry its name so inline SVGs never clash."""

    def __init__(self, name: str, height: int, title: str, desc: str) -> None:
        self.name, self.height, self.title, self.desc = name, height, title, desc
        self.parts: list[str] = []
        self.colours: set[str] = set()

    def label(
        self,
        x: float,
        y: float,
        lines: str | list[str],
        size: int = SMALL,
        anchor: str = "middle",
        head: bool = False,
        fill: str = INK,
        weight: str = "normal",
        cls: str = "",
    ) -> None:
        """Write lines of text centred vertically on y; with head the first line is a bold name."""
        lines = [lines] if isinstance(lines, str) else lines
        first = y - (len(lines) - 1) * LEADING / 2
        for i, line in enumerate(lines):
            big = head and i == 0
            px = TEXT if big else size
            # 0.35 em below the centre line puts the x-height in the middle of the slot.
            base = first + i * LEADING + 0.35 * px
            attrs = (
                f'x="{_num(x)}" y="{_num(round(base, 1))}" font-size="{px}" '
                f'text-anchor="{anchor}" fill="{fill}"'
            )
            bold = "600" if big else weight
            if bold != "normal":
                attrs += f' font-weight="{bold}"'
            if cls:
                attrs += f' class="{cls}"'
            self.parts.append(f"<text {attrs}>{escape(line, quote=False)}</text>")

    def rect(
        self,
        x: float,
        y: float,
        w: float,
        h: float,
        colour: str = GREY,
        dash: bool = False,
        fill: str | None = None,
        cls: str = "box",
        width: float = STROKE,
    ) -> None:
        """Draw a rounded rectangle; dashes mark the optional or failing parts."""
        style = f' stroke-dasharray="{DASH}"' if dash else ""
        paint = fill if fill is not None else TINT[colour]
        self.parts.append(
            f'<rect class="{cls}" x="{_num(x)}" y="{_num(y)}" width="{_num(w)}" height="{_num(h)}" '
            f'rx="{RADIUS}" '
            f'fill="{paint}" stroke="{colour}" stroke-width="{width}"{style}/>'
        )

    def box(
        self,
        x: float,
        y: float,
        w: float,
        h: float,
        lines: list[str],
        colour: str = GREY,
        dash: bool = False,
        stack: bool = False,
        align: str = "middle",
        head: bool = True,
    ) -> None:
        """Draw a box with a bold name line and smaller detail lines."""
        if stack:  # a second outline behind says "several of these" without drawing them all
            self.rect(x + STACK, y - STACK, w, h, colour, dash, cls="shadow")
        self.rect(x, y, w, h, colour, dash)
        tx, anchor = (x + w / 2, "middle") if align == "middle" else (x + INSET, "start")
        self.label(tx, y + h / 2, lines, anchor=anchor, head=head)

    def lane(
        self,
        x: float,
        y: float,
        w: float,
        h: float,
        title: str,
        note: str = "",
        colour: str = GREY,
        dash: bool = False,
        fill: str | None = None,
        stack: bool = False,
        size: int = TITLE,
    ) -> None:
        """Draw a titled frame that groups boxes, such as one environment or one instance."""
        if stack:
            self.rect(x + STACK, y - STACK, w, h, colour, dash, fill=fill or WHITE, cls="shadow")
        self.rect(x, y, w, h, colour, dash, fill=fill or WHITE, cls="lane", width=2)
        self.label(x + INSET, y + 22, title, size=size, anchor="start", weight="700")
        if note:
            self.label(x + w - INSET, y + 22, note, anchor="end", fill=MUTED)

    def arrow(self, *points: Point, colour: str = INK, dash: bool = False, free: str = "") -> None:
        """Draw a polyline through the points that ends in an arrowhead at the last one."""
        self.colours.add(colour)
        d = "M" + " L".join(f"{_num(px)},{_num(py)}" for px, py in points)
        style = f' stroke-dasharray="{DASH}"' if dash else ""
        tag = f' data-free="{free}"' if free else ""  # lets the review script skip ends that touch no box
        self.parts.append(
            f'<path class="arrow" d="{d}" fill="none" stroke="{colour}" stroke-width="{STROKE + 0.3}"'
            f'{style} marker-end="url(#{self.name}-head-{colour[1:]})"{tag}/>'
        )

    def line(self, start: Point, end: Point, colour: str = GREY) -> None:
        """Draw a plain line, such as an axis or a tick mark."""
        (x1, y1), (x2, y2) = start, end
        self.parts.append(
            f'<line x1="{_num(x1)}" y1="{_num(y1)}" x2="{_num(x2)}" y2="{_num(y2)}" '
            f'stroke="{colour}" stroke-width="{STROKE}"/>'
        )

    def badge(self, x: float, y: float, n: int | str) -> None:
        """Draw a numbered circle that ties an arrow to its line in the legend."""
        self.parts.append(
            f'<circle cx="{_num(x)}" cy="{_num(y)}" r="{BADGE_R}" fill="{WHITE}" '
            f'stroke="{INK}" stroke-width="{STROKE}"/>'
        )
        self.label(x, y, str(n), weight="700", cls="badge")

    def svg(self) -> str:
        """Return the finished SVG document."""
        n = self.name
        heads = "".join(
            f'<marker id="{n}-head-{c[1:]}" viewBox="0 0 10 10" refX="10" refY="5" orient="auto" '
            f'markerUnits="userSpaceOnUse" markerWidth="{ARROW_HEAD}" markerHeight="{ARROW_HEAD}">'
            f'<path d="M0,0 L10,5 L0,10 z" fill="{c}"/></marker>'
            for c in sorted(self.colours)
        )
        # Width and height pin the size so a notebook shows it 1:1 instead of stretching it to the cell.
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{self.height}" '
            f'viewBox="0 0 {WIDTH} {self.height}" role="img" aria-labelledby="{n}-title {n}-desc" '
            f'font-family="{FONT}">\n<title id="{n}-title">{escape(self.title)}</title>\n'
            f'<desc id="{n}-desc">{escape(self.desc)}</desc>\n<defs>{heads}</defs>\n'
            # An opaque page keeps the dark text readable under a dark notebook theme.
            f'<rect class="bg" width="100%" height="100%" fill="{WHITE}"/>\n'
            + "\n".join(self.parts)
            + "\n</svg>\n"
        )
