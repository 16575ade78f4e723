"""The local web page of `cosplace-xs serve`: drop photos and see where they were taken; browse a test set's hits
and misses. `app.py` builds the FastAPI application, `uploads.py` checks and stores uploaded photos, `failures.py`
scores a test set's queries for the failure browser, `static/` holds the page (no file loads from the network)."""
