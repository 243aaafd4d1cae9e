"""How results are shown: rich renderings for people and plain dicts for JSON output."""
