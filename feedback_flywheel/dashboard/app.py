"""The feedback_flywheel dashboard: `flywheel dashboard` runs ``streamlit run`` on this file.

Every page reads the published serving snapshot only (read-only, see feedback_flywheel.serving),
never the warehouse, so a dashboard left open never blocks the next batch.
"""

from pathlib import Path

import streamlit as st
from PIL import Image, ImageDraw

VIEWS = Path(__file__).resolve().parent / "views"


def _icon() -> Image.Image:
    """A small ring as the tab icon, drawn here: a named icon would be fetched from a CDN."""
    icon = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    draw = ImageDraw.Draw(icon)
    draw.ellipse((6, 6, 58, 58), outline=(31, 119, 180, 255), width=10)
    draw.ellipse((26, 2, 40, 16), fill=(255, 127, 14, 255))
    return icon


st.set_page_config(page_title="feedback_flywheel", page_icon=_icon(), layout="wide")

navigation = st.navigation(
    [
        st.Page(VIEWS / "overview.py", title="Overview", icon=":material/home:", default=True),
        st.Page(VIEWS / "kpis.py", title="KPI trends", icon=":material/monitoring:"),
        st.Page(VIEWS / "drift.py", title="Drift", icon=":material/stacked_line_chart:"),
        st.Page(VIEWS / "decisions.py", title="Retraining decisions", icon=":material/gavel:"),
        st.Page(VIEWS / "bias.py", title="Segment bias", icon=":material/balance:"),
        st.Page(VIEWS / "quarantine.py", title="Quarantine", icon=":material/block:"),
        st.Page(VIEWS / "datasets.py", title="Dataset versions", icon=":material/dataset:"),
        st.Page(VIEWS / "replay.py", title="Replay buffer", icon=":material/replay:"),
        st.Page(VIEWS / "feedback_loop.py", title="Feedback loop", icon=":material/sync:"),
    ]
)
navigation.run()
