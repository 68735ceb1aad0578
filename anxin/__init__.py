"""anxin's composition root: settings, the CLI and the process roles. Nothing else lives here."""
