"""Project-wide guarantees: import layers and the committed JSON Schemas."""

import json
import subprocess
import sys
from pathlib import Path

from cmdb_worker.schemas.json_schemas import all_json_schemas
from cmdb_worker.worker.schema_export import SCHEMA_DIR, render

ROOT = Path(__file__).resolve().parent.parent


def test_import_layers_hold():
    """import-linter keeps schemas <- rules <- worker, rules/schemas free of Kafka, and the engine
    package free of every I/O module (its contract is checked, not only declared)."""
    linter = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(linter)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
    assert "the engine is I/O-free" in result.stdout


def test_committed_json_schemas_match_the_models():
    """schemas/json holds exactly what the pydantic models generate (run `make schemas`)."""
    expected = {name: render(schema) for name, schema in all_json_schemas().items()}
    committed = {path.name: path.read_text() for path in SCHEMA_DIR.glob("*.json")}
    assert committed.keys() == expected.keys()
    drifted = [name for name in expected if committed[name] != expected[name]]
    assert drifted == [], f"regenerate with `make schemas`: {drifted}"


def test_json_schema_accepts_the_contract_example():
    """The published observed-event schema describes the contract's own example's fields; `time`
    is described but optional, as in CloudEvents 1.0."""
    schema = json.loads((SCHEMA_DIR / "cmdb.ci.observed.json").read_text())
    assert {"specversion", "id", "source", "type", "data"} <= set(schema["required"])
    assert "time" in schema["properties"] and "time" not in schema["required"]
