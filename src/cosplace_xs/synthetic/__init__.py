"""The procedural synthetic city: streets surveyed in the SF-XS layout and file-name format, the embedded
default dataset and the test fixture (`city.py` draws it; the other modules plan, light and render it)."""
