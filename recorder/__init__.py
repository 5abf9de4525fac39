"""zmq-recorder: record ZeroMQ instrument streams into zarr runs and replay them byte for byte."""

__version__ = "0.1.0"
