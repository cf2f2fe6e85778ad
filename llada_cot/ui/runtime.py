"""State the page shares between sessions: the loaded model, a compute lock and stop signals."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from pathlib import Path

from llada_cot.adapters import list_adapters, load_with_adapter, validate_adapter_name
from llada_cot.jobs import JobRegistry
from llada_cot.loading import LoadedModel, load_model
from llada_cot.sampling import SamplerConfig

DEFAULT_WORKSPACE = Path(__file__).resolve().parents[2] / "workspace"

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The page's base model, adapters, background jobs, a compute lock and per-session stop flags.

    Everything the page writes goes under `workspace`: adapters/, results/ and uploads/.
    """

    loaded: LoadedModel
    workspace: Path = DEFAULT_WORKSPACE
    jobs: JobRegistry = field(default_factory=JobRegistry)
    _adapter_cache: dict[str, LoadedModel] = field(default_factory=dict)
    _adapter_guard: threading.Lock = field(default_factory=threading.Lock)
    compute_lock: threading.Lock = field(default_factory=threading.Lock)
    _stop_events: dict[str, threading.Event] = field(default_factory=dict)
    _stop_guard: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_reference(cls, reference: str | None, device: str | None = None, trust_remote_code: bool = False,
                       workspace: Path | None = None) -> Runtime:
        loaded = load_model(reference, device=device, trust_remote_code=trust_remote_code)
        return cls(loaded=loaded, workspace=workspace or DEFAULT_WORKSPACE)

    @property
    def adapters_dir(self) -> Path:
        return self.workspace / "adapters"

    @property
    def results_dir(self) -> Path:
        return self.workspace / "results"

    @property
    def uploads_dir(self) -> Path:
        return self.workspace / "uploads"

    def adapter_names(self) -> list[str]:
        return list_adapters(self.adapters_dir)

    def model_for(self, adapter: str | None) -> LoadedModel:
        """Return the base model, or a copy with the named adapter merged in (the latest one is cached)."""
        if not adapter:
            return self.loaded
        validate_adapter_name(adapter)
        folder = self.adapters_dir / adapter
        if not folder.is_dir():
            raise ValueError(f"no adapter named {adapter!r} in {self.adapters_dir}; refresh the adapter list.")
        # A retrained adapter of the same name has a newer config file, so it is loaded afresh.
        key = f"{adapter}@{folder.stat().st_mtime_ns}"
        with self._adapter_guard:
            if key not in self._adapter_cache:
                loaded = load_with_adapter(self.loaded, folder)
                self._adapter_cache.clear()  # keep at most one adapter copy in memory
                self._adapter_cache[key] = loaded
            return self._adapter_cache[key]

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
