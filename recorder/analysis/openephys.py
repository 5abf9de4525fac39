"""Open Ephys streams shaped like ``open_ephys.analysis`` (open-ephys-python-tools).

``stream.continuous[i]`` has ``samples`` (samples x channels), ``sample_numbers``,
``timestamps`` (seconds) and ``metadata``, as a ``Recording.continuous[i]`` of that package
does; ``stream.events`` is its TTL event table. One continuous entry per Open Ephys data stream
(the GUI's ``stream`` name), its channels placed side by side by channel number.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from recorder.analysis import arrays
from recorder.analysis.stream import Stream

if TYPE_CHECKING:
    import pandas

CONTINUOUS_PREFIX = "continuous/"
TTL_EVENT = 3  # Open Ephys EventType TTL (recorder.protocols.openephys.TTL)


class Continuous:
    """One Open Ephys data stream: samples x channels, read from the run when asked for.

    `timestamps` are sample numbers divided by the sample rate, what the GUI writes for a
    stream that was not synchronised; `metadata` has ``stream_name``, ``sample_rate``,
    ``num_channels``, ``channel_names``, ``bit_volts`` and ``units`` (None when the source did
    not send them).
    """

    def __init__(self, family: arrays.Family):
        self.family = family
        self.stream_name = family.name.removeprefix(CONTINUOUS_PREFIX)

    @cached_property
    def _whole(self) -> arrays.Placed:
        return arrays.placed(self.family)

    @property
    def metadata(self) -> dict[str, Any]:
        attrs = self._whole.attrs
        n = int(self._whole.values.shape[1])
        names = attrs.get("channel_names")
        return {
            "stream_name": self.stream_name,
            "sample_rate": attrs.get("sample_rate"),
            "num_channels": n,
            "channel_names": list(names) if names else [f"CH{c + 1}" for c in range(n)],
            "bit_volts": attrs.get("scale"),
            "units": attrs.get("units"),
        }

    @property
    def sample_numbers(self) -> np.ndarray:
        return self._whole.sample_numbers

    @property
    def timestamps(self) -> np.ndarray:
        rate = self.metadata["sample_rate"]
        if not rate:
            raise ValueError(f"stream {self.stream_name} has no sample rate: use sample_numbers")
        return self.sample_numbers / float(rate)

    @property
    def samples(self) -> np.ndarray:
        """All samples (samples x channels) as stored; cells no message filled are NaN."""
        return np.asarray(self._whole.values.compute())

    def get_samples(
        self, start_sample_index: int, end_sample_index: int, selected_channels: Any = None
    ) -> np.ndarray:
        """Rows [start, end) of `samples` (indices, not sample numbers), reading only those;
        `selected_channels` picks columns."""
        rows = self._whole.values[start_sample_index:end_sample_index]
        if selected_channels is not None:
            rows = rows[:, selected_channels]
        return np.asarray(rows.compute())

    def __repr__(self) -> str:
        m = self.metadata
        return (
            f"<Continuous {self.stream_name}: {len(self.sample_numbers)} samples x "
            f"{m['num_channels']} channels at {m['sample_rate']} Hz>"
        )


class OpenEphysStream(Stream):
    """An Open Ephys ZMQ Interface stream: ``continuous`` and ``events``."""

    @cached_property
    def continuous(self) -> list[Continuous]:
        return [
            Continuous(f)
            for name, f in arrays.families(self.reader).items()
            if name.startswith(CONTINUOUS_PREFIX) and f.placed
        ]

    @property
    def events(self) -> pandas.DataFrame:
        """TTL events as ``open_ephys.analysis`` lists them: sample_number, timestamp
        (seconds, by the stream's sample rate), line, state (1 on, 0 off), processor_id,
        stream_name, plus the message number and receive time."""
        import pandas as pd

        want = ["recv_ns", "event_type", "sample_num", "line", "state", "source_node", "stream"]
        have = set(self.columns)
        if not {"event_type", "line"} <= have:
            return pd.DataFrame(
                columns=["sample_number", "timestamp", "line", "state", "processor_id"]
            )
        t = self.table([c for c in want if c in have])
        t = t[t["event_type"] == TTL_EVENT]
        rates = {c.stream_name: c.metadata["sample_rate"] for c in self.continuous}
        rate = t["stream"].map(lambda s: rates.get(s) or np.nan).astype(float)
        return pd.DataFrame(
            {
                "sample_number": t["sample_num"],
                "timestamp": t["sample_num"].astype(float) / rate,
                "line": t["line"],
                "state": t["state"],
                "processor_id": t["source_node"],
                "stream_name": t["stream"],
                "recv_time": t["recv_time"],
            }
        )
