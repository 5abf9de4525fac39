"""Faithful stand-ins for live instrument sources, used by tests, demos and `recorder simulate`."""
