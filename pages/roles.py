"""Roles: who may do what when sign-in is on (viewer, labeller, admin); admins grant and remove them."""

import streamlit as st

from coldrec import access, ui
from coldrec.errors import ColdrecError

ws = ui.workspace()
st.title("Roles")
ui.show_flash()
st.caption(
    "A **viewer** sees everything and changes nothing · a **labeller** labels, undoes their own actions and labels "
    f"up to {access.LABELLER_BULK_MAX} items at once · an **admin** also imports, changes categories and targets, "
    "switches and fine-tunes models and grants roles. Every change is checked when it is saved, whatever the page shows."
)
if not ws.access.sign_in:
    st.info("Single-user local mode: no sign-in is configured, so whoever opens the dashboard may do everything. "
            "Add an [auth] section to .streamlit/secrets.toml (README, “A team on one dashboard”) to sign people in; "
            "roles granted here apply from then on.", icon="🔓")

table = access.roles_table(ws)
if table.empty:
    st.caption("No roles yet." + (" Configured admins ([coldrec] admins in secrets.toml) grant the first ones here."
                                  if ws.access.sign_in else ""))
else:
    ui.table(table)

is_admin = ui.can(ws, "roles")
with st.form("grant-role", clear_on_submit=True):
    st.subheader("Grant or change a role", anchor=False)
    email = st.text_input("Email (as the sign-in provider gives it)", max_chars=254, placeholder="ana@example.com")
    role = st.radio("Role", [*access.ROLES, "remove"], horizontal=True, index=1)
    if st.form_submit_button("Save role", disabled=not is_admin, type="primary"):
        try:
            access.set_role(ws, ui.who(), email, None if role == "remove" else role)
        except ColdrecError as exc:
            ui.error(exc)
        else:
            ui.flash(f"Saved: {ui.md_escape(access.normal_email(email))} is {'removed' if role == 'remove' else role}")
            st.rerun()
if not is_admin:
    st.caption("Only admins change roles.")
