"""`make bench`: every benchmark there is so far, one after the other, figures printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHES = ["events.py"]

for bench in BENCHES:
    print(f"== bench/{bench}", flush=True)
    subprocess.run([sys.executable, str(Path(__file__).parent / bench)], check=True)
