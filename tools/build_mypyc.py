"""Compile csms's protocol-path modules with mypyc into a separate directory (an experiment).

    python tools/build_mypyc.py [--out build/mypyc] [--modules csms/ocpp16/rpc.py ...]

Writes a complete copy of the `csms` package into OUT, with MODULES (below) compiled to C
extensions next to their .py sources (an extension wins over a .py in the same directory), and
mypyc's shared runtime library at OUT's top. Nothing in the source tree changes, so a stale
build never shadows an edited module unless OUT is put first on sys.path on purpose:

    PYTHONPATH=build/mypyc .venv/bin/python bench/protocol_inprocess.py --parts
    PYTHONPATH=build/mypyc .venv/bin/pytest --import-mode=append tests/ocpp16 -q

(pytest's default import mode puts the repository first on sys.path, hiding the build.)

docs/notes/mypyc.md has the figures and how this could ship.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The protocol path (bench/protocol_inprocess.py, bench/servers/csms_protocol.py). Not
# csms/core/meter.py: compiled, its frozen dataclass Sample keeps the interpreted __init__ the
# dataclasses module writes and loses convert._sample's shortcut, and `samples` costs 8.2 us
# instead of 5.3 (docs/notes/mypyc.md); --modules ... csms/core/meter.py to see it. Not
# csms/ocpp16/picows_socket.py: mypyc compiles PicowsSocket as a native class over picows'
# Cython WSListener, whose C fields it does not lay out, and the TLS tests crash
# (Segmentation fault in tests/ocpp16/on_uvloop/test_tls_on_uvloop.py). Not csms/metrics.py:
# it compiles and passes, but Metrics.ocpp_message costs 0.58 us instead of 0.46.
MODULES = [
    "csms/core/clock.py",
    "csms/ocpp16/limits.py",
    "csms/ocpp16/schemas.py",
    "csms/ocpp16/poison.py",
    "csms/ocpp16/leniency.py",
    "csms/ocpp16/convert.py",
    "csms/ocpp16/rpc.py",
    "csms/ocpp16/sockets.py",
    "csms/ocpp16/connection.py",
    "csms/ocpp16/transport_picows.py",
]

# Source changes the compiled copy needs, applied to OUT's copy (never to csms/) when the
# first module is compiled: (compiled module, file patched, old text, new text).
PATCHES = [
    # convert._sample builds meter.Sample through object.__new__ and __dict__, which a mypyc
    # native class has not (TypeError: object.__new__(Sample) is not safe).
    (
        "csms/core/meter.py",
        "csms/ocpp16/convert.py",
        """    sample: Sample = object.__new__(Sample)
    sample.__dict__.update(
""",
        """    return Sample(
""",
    ),
    (
        "csms/core/meter.py",
        "csms/ocpp16/convert.py",
        """        flags=flags,
    )
    return sample
""",
        """        flags=flags,
    )
""",
    ),
    # typeshed says asyncio.Server.sockets is a tuple; uvloop's is a list, and mypyc checks
    # what it reads (TypeError: tuple object expected; got list): read it through Any.
    (
        "csms/ocpp16/transport_picows.py",
        "csms/ocpp16/transport_picows.py",
        """        return tuple(self._server.sockets) if self._server is not None else ()
""",
        """        listening: Any = self._server
        return tuple(listening.sockets) if listening is not None else ()
""",
    ),
    # picows' stub says WSFrame.fin is a bool; it is an int, and the compiled limits.py checks
    # its bool argument (TypeError: bool object expected; got int, a fragment closes 1011).
    (
        "csms/ocpp16/limits.py",
        "csms/ocpp16/picows_socket.py",
        "receive_frame(fin=frame.fin,",
        "receive_frame(fin=bool(frame.fin),",
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "mypyc")
    parser.add_argument("--modules", nargs="+", default=MODULES)
    parser.add_argument("--opt-level", default="3")
    args = parser.parse_args()

    from mypyc.build import mypycify
    from setuptools import setup

    started = time.monotonic()
    out: Path = args.out.resolve()
    if out.exists():
        shutil.rmtree(out)
    # The pure package first, then the extensions over it.
    shutil.copytree(ROOT / "csms", out / "csms", ignore=shutil.ignore_patterns("__pycache__"))
    for compiled, name, old, new in PATCHES:
        if compiled not in args.modules:
            continue
        source = (out / name).read_text()
        if old not in source:
            raise SystemExit(f"{name} changed: its patch for mypyc does not apply")
        (out / name).write_text(source.replace(old, new))
    os.chdir(out)  # mypy finds `csms` in the patched copy
    with tempfile.TemporaryDirectory() as temp:
        extensions = mypycify(
            ["--config-file", str(ROOT / "pyproject.toml"), *args.modules],
            opt_level=args.opt_level,
            target_dir=str(Path(temp) / "c"),
        )
        sys.argv = [sys.argv[0]]
        setup(
            name="csms-mypyc",
            ext_modules=extensions,
            script_args=["-q", "build_ext", "--build-lib", str(out), "--build-temp", temp],
        )
    built = sorted(p.relative_to(out) for p in out.rglob("*.so"))
    print(f"{len(built)} extensions in {out} in {time.monotonic() - started:.0f} s:")
    for path in built:
        print(f"  {path}")


if __name__ == "__main__":
    main()
