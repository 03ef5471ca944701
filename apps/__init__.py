"""Small applications built on the framegraph runtime (run them as scripts: python apps/NAME.py)."""
