"""Edge demo: re-identify people from a camera on a Raspberry Pi, with LiteRT only.

It runs with numpy, OpenCV and the LiteRT interpreter (never TensorFlow). It
finds people in each frame, extracts their features with the exported
extractor, tracks them, and matches them against an SQLite gallery with the
exported scorer, enrolling people it has not seen before. See README.md.

Example:

    python -m edge_demo run --model-dir models --mode int8 --source 0 --headless --events events.jsonl
"""
