"""Layer 1, core: errors, the registry (project configuration), table schemas, atomic writes and the one reader of stored assets. Imports nothing else of the package."""
