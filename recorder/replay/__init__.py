"""Replay stored runs over ZMQ with the original protocols, bytes and timing."""

from recorder.replay.replayer import Replayer

__all__ = ["Replayer"]
