"""Loading students and teachers (transformers, ExLlamaV2) and the demo model."""
