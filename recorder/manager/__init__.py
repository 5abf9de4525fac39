"""The manager: one per host; starts, watches and stops recorder and replayer workers."""
