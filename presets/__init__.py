"""The shipped presets: YAML files installed as package data (sora_cli.shipped_presets)."""
