"""How the report's figures are drawn: fixed-margin panels, colours, legends, PNG bytes.

Figures are drawn on matplotlib's Agg canvas without pyplot (no global state, no display),
and closed by going out of scope. Every policy keeps one colour across all
figures: its position in the configured policy list picks it from matplotlib's tab10.
"""

import io
import math
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

DPI = 120
PANEL = (3.6, 2.4)  # inches of one architecture's panel: width, height


def png(figure):
    """The figure as PNG bytes."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    # Light compression: a fifth faster to write than the default, a few % larger.
    figure.savefig(buffer, dpi=DPI, format="png", pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def policy_colors(policies):
    palette = [f"C{i}" for i in range(10)]
    return {policy: palette[i % len(palette)] for i, policy in enumerate(policies)}


@dataclass(frozen=True)
class Margins:
    """Space around and between the panels of a figure, in inches."""

    left: float = 0.85
    right: float = 0.25
    top: float = 0.75
    bottom: float = 0.6
    between_columns: float = 0.85
    between_rows: float = 0.5


def panels(rows, columns, width, height, margins=Margins(), **options):
    """A figure of rows x columns panels of `width` x `height` inches, `margins` around them.

    Fixed margins rather than a layout engine: constrained layout measures every tick label
    and doubles the time to draw a figure, which adds up over the figures of many targets.
    """
    figure_width = (margins.left + margins.right + columns * width
                    + (columns - 1) * margins.between_columns)
    figure_height = (margins.top + margins.bottom + rows * height
                     + (rows - 1) * margins.between_rows)
    figure = Figure(figsize=(figure_width, figure_height))
    axes = figure.subplots(rows, columns, squeeze=False, gridspec_kw={
        "left": margins.left / figure_width, "right": 1 - margins.right / figure_width,
        "bottom": margins.bottom / figure_height, "top": 1 - margins.top / figure_height,
        "wspace": margins.between_columns / width, "hspace": margins.between_rows / height,
    }, **options)
    return figure, axes


def title(figure, text):
    """The figure's title, in a smaller font where a narrow figure (one architecture) would
    cut it off; a character is about 0.55 of the font size wide."""
    fitting = figure.get_figwidth() * 72 / (0.55 * len(text))
    figure.suptitle(text, y=1 - 0.12 / figure.get_figheight(), va="top",
                    fontsize=max(8, min(12, fitting)))


def panel_title(axis, text):
    # A fixed height: left to itself, matplotlib measures the tick labels to place a title.
    axis.set_title(text, fontsize=10, y=1.0, pad=5)


def interval(frame, value, low, high):
    """Error bar lengths (2 x rows) from a value and its interval bounds."""
    return np.vstack([frame[value] - frame[low], frame[high] - frame[value]]).clip(min=0)


def legend_below(figure, handles, columns=4):
    figure.legend(handles=handles, loc="lower center", ncols=columns, frameon=False,
                  bbox_to_anchor=(0.5, 0.04 / figure.get_figheight()))


def legend_shape(entries, panel_columns, entry_width):
    """(columns, inches of height) of a legend below `panel_columns` panels of PANEL width:
    as many columns of `entry_width` inches as the figure is wide."""
    margins = Margins()
    width = (margins.left + margins.right + panel_columns * PANEL[0]
             + (panel_columns - 1) * margins.between_columns)
    columns = max(1, min(entries, int(width // entry_width)))
    return columns, 0.3 * math.ceil(entries / columns) + 0.1


def notice(heading, text):
    """A small figure that says why there is nothing to draw."""
    figure = Figure(figsize=(8, 1.3))
    figure.text(0.02, 0.75, heading, fontsize=12, va="center")
    figure.text(0.02, 0.35, text, fontsize=10, va="center", wrap=True)
    return png(figure)

def policy_legend(policies, colors, panel_columns):
    """(handles, `legend_shape`) of a legend with a line per policy and the dashed line of a
    baseline's best validation accuracy."""
    handles = [Line2D([], [], color=colors[p], linewidth=2, label=p) for p in policies] + [
        Line2D([], [], color="0.3", linestyle="--", label="a baseline's best")]
    return handles, legend_shape(len(handles), panel_columns, entry_width=2.3)
