"""Tables, files (md/csv/html/png), figures, the CLI, scaffolding and listing."""
