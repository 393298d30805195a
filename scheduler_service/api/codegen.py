"""Regenerate :mod:`scheduler_service.api.schema` from ``schema.graphql``.

``python -m scheduler_service.api.codegen`` turns the SDL into the introspection JSON with
graphql-core, then runs ``sgqlc-codegen schema`` on it. The generated module is checked in;
a test regenerates it into a temporary folder and fails if the two differ, so the client
types can never drift from the contract.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from graphql import build_schema, introspection_from_schema

PACKAGE_DIR = Path(__file__).resolve().parent
#: The contract, at the top of the source tree.
DEFAULT_SDL = PACKAGE_DIR.parent.parent / "schema.graphql"
#: The checked-in generated module.
DEFAULT_OUTPUT = PACKAGE_DIR / "schema.py"
#: First line of the generated module.
HEADER = "# Generated from schema.graphql by `python -m scheduler_service.api.codegen`: do not edit.\n"
#: sgqlc would swap these for its Relay types, whose fields differ from the contract's.
EXCLUDED_DEFAULT_TYPES = ("PageInfo", "Node")


def introspection(sdl_text: str) -> dict:
    """The introspection result (``{"__schema": ...}``) of an SDL document."""
    return introspection_from_schema(build_schema(sdl_text))


def generate(sdl_path: Path = DEFAULT_SDL, output: Path = DEFAULT_OUTPUT) -> Path:
    """Write the sgqlc types of ``sdl_path`` to ``output``.

    Args:
        sdl_path: the GraphQL SDL file.
        output: the Python module to write; its base name becomes the sgqlc schema name.

    Returns:
        ``output``.

    Raises:
        subprocess.CalledProcessError: when ``sgqlc-codegen`` fails.
    """
    output = Path(output)
    data = introspection(Path(sdl_path).read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        json_path = Path(tmp) / "schema.json"
        json_path.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        subprocess.run(
            [sys.executable, "-m", "sgqlc.codegen", "schema", "--docstrings",
             "--schema-name", output.stem, str(json_path), str(output),
             "--exclude-default-types", *EXCLUDED_DEFAULT_TYPES],
            check=True,
        )
    output.write_text(HEADER + output.read_text(encoding="utf-8"), encoding="utf-8")
    return output


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdl", type=Path, default=DEFAULT_SDL, help="the GraphQL SDL file")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="module to write")
    args = parser.parse_args(argv)
    print(generate(args.sdl, args.output))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
