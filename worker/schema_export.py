"""Write the generated JSON Schemas into ``schemas/json/`` (``make schemas``)."""

import json
import sys
from pathlib import Path

from cmdb_worker.schemas.json_schemas import all_json_schemas

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "json"


def render(schema: object) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> int:
    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    for stale in SCHEMA_DIR.glob("*.json"):
        stale.unlink()
    for name, schema in all_json_schemas().items():
        (SCHEMA_DIR / name).write_text(render(schema), encoding="utf-8")
    print(f"wrote {len(all_json_schemas())} schemas to {SCHEMA_DIR}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
