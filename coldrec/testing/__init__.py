"""Inputs shared by the tests and the benchmarks (as ``streamlit.testing`` is Streamlit's): the app
never imports this package. Benchmarks import it instead of ``tests/``, which they must not."""
