"""Generate the Python modules of the lnd protos: ``python -m satworks.integrations.lnd.protos.build [OUT_DIR]``.

grpcio-tools compiles messages and gRPC stubs; mypy-protobuf's plugins write the ``.pyi`` stubs that
mypy checks our code against. protoc writes top-level imports (``import lightning_pb2``), which only
work when the output directory is on ``sys.path``, so they are rewritten as relative imports. Both
tools are pinned in ``pyproject.toml`` so a regeneration is byte-for-byte reproducible.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTOS = ("lightning.proto", "router.proto")
_TOP_LEVEL_IMPORT = re.compile(r"^import (\w+_pb2(?:_grpc)?)\b", re.MULTILINE)


class GenerationFailed(RuntimeError):
    pass


def generate(out_dir: Path) -> list[Path]:
    """Write the ``*_pb2*.py``/``.pyi`` modules into ``out_dir``; returns their paths (sorted)."""
    from grpc_tools import protoc  # a development dependency: needed only here

    bin_dir = str(Path(sys.executable).parent)
    names = ("protoc-gen-mypy", "protoc-gen-mypy_grpc")
    plugins = {name: shutil.which(name, path=bin_dir) or shutil.which(name) for name in names}
    missing = [name for name, path in plugins.items() if path is None]
    if missing:
        raise GenerationFailed(f"mypy-protobuf is not installed ({', '.join(missing)} not found)")
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"--proto_path={HERE}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--plugin=protoc-gen-mypy={plugins['protoc-gen-mypy']}",
        f"--mypy_out={out_dir}",
        f"--plugin=protoc-gen-mypy_grpc={plugins['protoc-gen-mypy_grpc']}",
        f"--mypy_grpc_out={out_dir}",
        *(str(HERE / name) for name in PROTOS),
    ]
    if protoc.main(args) != 0:
        raise GenerationFailed("protoc failed (its errors are above)")
    written = sorted(p for p in out_dir.iterdir() if p.name.endswith((".py", ".pyi")) and "_pb2" in p.name)
    for path in written:
        path.write_text(_TOP_LEVEL_IMPORT.sub(r"from . import \1", path.read_text()))
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out_dir = Path(args[0]) if args else HERE
    for path in generate(out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
