"""Recipes: evaluate, capture (and later distil), each setup -> loop -> cleanup inside the run lifecycle."""
