"""The dashboard (`flywheel dashboard`): a Streamlit app over the published serving snapshot.

``data`` holds the queries (pure functions of a DuckDB connection that return small, reduced
frames); ``app.py`` and ``views/`` only draw what those return. The app never opens the
warehouse itself, only the read-only copy ``feedback_flywheel.serving`` publishes, so it never
blocks a running build.
"""
