"""Pure stages on plain data: no server, no socket, no CLI."""
