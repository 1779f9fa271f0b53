"""The store on disk: paths, the writers' lock, the journal and the index, versions and their
manifests, and the writers' algorithms (publish, moving `current`, retention, aliases, verify)."""
