"""coldrec dashboard: `streamlit run app.py` (or `make run`)."""

import streamlit as st

from coldrec import ui

st.set_page_config(page_title="coldrec", page_icon="🧊", layout="wide")
ws = ui.workspace()
ui.sidebar(ws)
page = st.navigation(
    [
        st.Page("pages/overview.py", title="Overview", icon="🏠", default=True),
        st.Page("pages/upload.py", title="Upload & predict", icon="📤"),
        st.Page("pages/queue.py", title="Label next", icon="⏭️"),
        st.Page("pages/label.py", title="Label", icon="🏷️"),
        st.Page("pages/explore.py", title="Explore", icon="🗺️"),
        st.Page("pages/audience.py", title="Audience", icon="🎯"),
        st.Page("pages/categories.py", title="Categories & model", icon="⚙️"),
    ]
)
page.run()
