"""The generated stubs are committed (so `pip install` needs nothing but PyPI's runtime
packages); this fails when they no longer match proto/ or the pinned grpcio-tools."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "clients" / "python" / "src" / "credvault" / "v1"


def test_the_committed_stubs_are_what_the_protos_generate(tmp_path: Path) -> None:
    protos = sorted(str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto" / "credvault" / "v1").glob("*.proto"))
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", str(ROOT / "proto"), f"--python_out={tmp_path}",
         f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}", *protos],
        check=True,
    )
    generated = sorted(p.name for p in (tmp_path / "credvault" / "v1").iterdir())
    committed = sorted(p.name for p in COMMITTED.iterdir() if p.name != "__init__.py" and p.suffix in {".py", ".pyi"})
    assert generated == committed
    stale = [name for name in generated
             if (tmp_path / "credvault" / "v1" / name).read_bytes() != (COMMITTED / name).read_bytes()]
    assert not stale, f"regenerate with clients/python/generate.sh: {stale} differ from proto/"
