"""The CLI and the bot's stages end to end, against stand-ins and backends on 127.0.0.1 (tests/standins/)."""
