"""The Textual app and its screens: thin clients of the store API, every blocking call in a worker."""
