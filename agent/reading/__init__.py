"""Reading files: identity, discovery, one open file, the watcher, whole files."""
