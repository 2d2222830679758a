"""coldrec dashboard: `streamlit run app.py` (or `make run`)."""

import streamlit as st

from coldrec import ui

st.set_page_config(page_title="coldrec", page_icon="🧊", layout="wide")
if not ui.may_enter():  # sign-in configured ([auth] in .streamlit/secrets.toml) and not signed in with a role
    st.navigation([st.Page(ui.sign_in_screen, title="Sign in", url_path="sign-in")], position="hidden").run()
    st.stop()
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
        st.Page("pages/audit.py", title="Audit", icon="📜"),
        st.Page("pages/roles.py", title="Roles", icon="🔑"),
    ]
)
page.run()
