"""Renders assets/text.png: a photo-like page of printed text for the text
detector's example (README, "Branching networks and detectors").

    python tools/make_text_photo.py [OUT.png]

A sheet of off-white paper lit from one side, with a title, a few lines of
body text in two sizes and a line of digits, turned by a small angle and
with a little sensor noise, 480x320 pixels (both multiples of 32, as DB
text detectors take them). Fixed seed: the same file every time. Needs
Pillow and numpy, and the DejaVu fonts (Debian: fonts-dejavu-core).
"""

import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 480, 320
FONTS = "/usr/share/fonts/truetype/dejavu/"
LINES = [
    ("DejaVuSerif-Bold.ttf", 30, "Feature maps"),
    ("DejaVuSans.ttf", 17, "A conv layer with K filters of F x F"),
    ("DejaVuSans.ttf", 17, "over C channels learns (C*F*F + 1)*K"),
    ("DejaVuSans.ttf", 17, "numbers: 2432 for 32 filters of 5 x 5."),
    ("DejaVuSansMono.ttf", 15, "convmaps photo.png --filters 32"),
    ("DejaVuSerif.ttf", 22, "0123456789"),
]


def page() -> Image.Image:
    """The sheet: paper lit from the left, the lines of text in dark ink."""
    x = np.linspace(0.0, 1.0, WIDTH)[None, :, None]
    y = np.linspace(0.0, 1.0, HEIGHT)[:, None, None]
    paper = np.array([236.0, 232.0, 220.0]) * (1.0 - 0.12 * x - 0.05 * y)
    sheet = Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(sheet)
    top = 24
    for font_file, size, text in LINES:
        font = ImageFont.truetype(FONTS + font_file, size)
        draw.text((36, top), text, font=font, fill=(34, 30, 40))
        top += int(size * 1.55)
    return sheet


def photographed(sheet: Image.Image) -> Image.Image:
    """The sheet turned by 2.5 degrees on a darker desk, with sensor noise."""
    desk = Image.new("RGB", sheet.size, (92, 84, 74))
    turned = sheet.rotate(2.5, resample=Image.BICUBIC, expand=False, fillcolor=(92, 84, 74))
    mask = Image.new("L", sheet.size, 255).rotate(2.5, resample=Image.BICUBIC, expand=False, fillcolor=0)
    desk.paste(turned, (0, 0), mask)
    rng = np.random.default_rng(7)
    pixels = np.asarray(desk).astype(np.float64) + rng.normal(0.0, 3.0, (HEIGHT, WIDTH, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "assets/text.png"
    photographed(page()).save(out, optimize=True)
    print(out)


if __name__ == "__main__":
    main()
