"""Configuration: one pydantic model per recipe (flags, TOML, identity), presets, and where data lives."""
