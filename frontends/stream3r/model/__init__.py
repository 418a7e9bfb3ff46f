"""STream3R network modules (parameter names follow the official state dict)."""
