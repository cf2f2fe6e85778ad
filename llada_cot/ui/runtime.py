"""State the page shares between sessions: the loaded model, a compute lock and stop signals."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from llada_cot.loading import LoadedModel, load_model
from llada_cot.sampling import SamplerConfig

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The page's one model, a lock so one generation uses it at a time, and per-session stop flags."""

    loaded: LoadedModel
    compute_lock: threading.Lock = field(default_factory=threading.Lock)
    _stop_events: dict[str, threading.Event] = field(default_factory=dict)
    _stop_guard: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_reference(cls, reference: str | None, device: str | None = None,
                       trust_remote_code: bool = False) -> Runtime:
        return cls(loaded=load_model(reference, device=device, trust_remote_code=trust_remote_code))

    def default_sampler(self) -> SamplerConfig:
        return SamplerConfig(**self.loaded.sampler_defaults).validate()

    def start_run(self, session: str) -> threading.Event:
        """Return a fresh stop flag for the session's next run."""
        event = threading.Event()
        with self._stop_guard:
            self._stop_events[session] = event
        return event

    def request_stop(self, session: str) -> bool:
        """Set the session's stop flag; return False when it has no run."""
        with self._stop_guard:
            event = self._stop_events.get(session)
        if event is None:
            return False
        event.set()
        return True

    def finish_run(self, session: str, event: threading.Event) -> None:
        with self._stop_guard:
            if self._stop_events.get(session) is event:
                del self._stop_events[session]
