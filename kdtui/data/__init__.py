"""GSM8K and synthetic problems, prompt templates, teacher strategies, JSON lines."""
