"""Print a benchmark's figures as JSON and keep them in ``--out`` (shared by the small benchmarks)."""

import json


def emit(figures, out_path=None):
    """Print ``figures`` (indented, sorted keys) and write the same text to ``out_path`` when given."""
    text = json.dumps(figures, indent=2, sort_keys=True)
    print(text)
    if out_path:
        with open(out_path, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
