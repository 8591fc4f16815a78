"""Lines over 120 columns in heart_nb/*.py, except the `__all__` line that nbdev generates: none allowed.

python .ci/long_lines.py          (exit 0: none; 1: each one printed as FILE:LINE: LENGTH)
"""

import sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]
bad = []
for p in sorted((root / "heart_nb").glob("*.py")):
    if p.name == "_modidx.py":
        continue
    for i, line in enumerate(p.read_text().splitlines(), 1):
        if len(line) > 120 and not line.startswith("__all__ = ["):
            bad.append(f"{p.relative_to(root)}:{i}: {len(line)}")
print("\n".join(bad) or "no line over 120 columns in heart_nb/")
sys.exit(1 if bad else 0)
