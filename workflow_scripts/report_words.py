"""Words the report's figures, summary and page share: captions and unit labels."""

from pathlib import Path

# One caption per figure, shared with Snakemake's report (`report(..., caption=...)`).
CAPTIONS = Path(__file__).resolve().parents[1] / "report"


def caption(name):
    """The figure's caption: the text of report/{name}.rst as one paragraph."""
    return " ".join((CAPTIONS / f"{name}.rst").read_text().split())

def time_label(kind):
    """Axis and column label for device time: honest about CPU runs."""
    return {"GPU": "GPU-seconds", "CPU": "CPU-seconds"}.get(kind, "device-seconds")
