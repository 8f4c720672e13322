"""Teacher captures on disk: the shard format, the manifest, reading back and inspecting."""
