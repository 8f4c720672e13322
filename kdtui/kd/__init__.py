"""Knowledge distillation: losses over dense, top-k and hidden-state teachers (pure torch)."""
