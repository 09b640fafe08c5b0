"""Training presets (TOML): ``orthoact train lm --preset NAME``."""
