"""State the page shares between sessions: the loaded model, a compute lock and stop signals."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from pathlib import Path

from llada_cot.adapters import list_adapters, load_with_adapter, validate_adapter_name
from llada_cot.jobs import JobRegistry
from llada_cot.loading import TINY_MODEL, LoadedModel, load_model
from llada_cot.sampling import SamplerConfig

DEFAULT_WORKSPACE = Path(__file__).resolve().parents[2] / "workspace"

logger = logging.getLogger(__name__)


class ModelNotAllowedError(ValueError):
    """A page asked for a model reference that is not on the server's allow list."""

    def __init__(self, reference: str, allowed: list[str]):
        super().__init__(f"The model {reference!r} is not on this server's list ({', '.join(allowed)}); "
                         "start the app with --allow-model to add it.")
        self.reference = reference
        self.allowed = allowed


@dataclass
class Runtime:
    """The page's base model, adapters, background jobs, a compute lock and per-session stop flags.

    Everything the page writes goes under `workspace`: adapters/, results/, uploads/ and downloads/.

    A page may switch to another model only when its reference is in
    `allowed_models` (or `allow_any_model` is set by the operator), because a
    reference is also a local path or a Hub download that the server would read.
    """

    loaded: LoadedModel
    workspace: Path = DEFAULT_WORKSPACE
    allowed_models: tuple[str, ...] = (TINY_MODEL,)
    allow_any_model: bool = False
    trust_remote_code: bool = False
    _other_models: dict[str, LoadedModel] = field(default_factory=dict)
    _model_guard: threading.Lock = field(default_factory=threading.Lock)
    jobs: JobRegistry = field(default_factory=JobRegistry)
    _adapter_cache: dict[str, LoadedModel] = field(default_factory=dict)
    _adapter_guard: threading.Lock = field(default_factory=threading.Lock)
    compute_lock: threading.Lock = field(default_factory=threading.Lock)
    _stop_events: dict[str, threading.Event] = field(default_factory=dict)
    _stop_guard: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_reference(cls, reference: str | None, device: str | None = None, trust_remote_code: bool = False,
                       workspace: Path | None = None, allowed_models: tuple[str, ...] = (TINY_MODEL,),
                       allow_any_model: bool = False) -> Runtime:
        loaded = load_model(reference, device=device, trust_remote_code=trust_remote_code)
        return cls(loaded=loaded, workspace=workspace or DEFAULT_WORKSPACE, allowed_models=tuple(allowed_models),
                   allow_any_model=allow_any_model, trust_remote_code=trust_remote_code)

    @property
    def adapters_dir(self) -> Path:
        return self.workspace / "adapters"

    @property
    def results_dir(self) -> Path:
        return self.workspace / "results"

    @property
    def uploads_dir(self) -> Path:
        return self.workspace / "uploads"

    @property
    def downloads_dir(self) -> Path:
        """Folder of the adapter zips that the Fine-tune tab offers for download."""
        return self.workspace / "downloads"

    def adapter_names(self) -> list[str]:
        return list_adapters(self.adapters_dir)

    def model_choices(self) -> list[str]:
        """Return the model references a page may pick: the loaded one first, then the allowed ones."""
        return list(dict.fromkeys([self.loaded.reference, *self.allowed_models]))

    def check_model(self, reference: str | None) -> None:
        """Raise ModelNotAllowedError when a page may not load `reference`; empty means the loaded model."""
        if reference and reference != self.loaded.reference and not self.allow_any_model \
                and reference not in self.allowed_models:
            raise ModelNotAllowedError(reference, self.model_choices())

    def base_model(self, reference: str | None = None) -> LoadedModel:
        """Return the loaded model, or load an allowed other one (one other model stays in memory).

        Raises ModelNotAllowedError for a reference off the allow list and
        ModelLoadError when the reference cannot be loaded.
        """
        if not reference or reference == self.loaded.reference:
            return self.loaded
        self.check_model(reference)
        with self._model_guard:
            if reference not in self._other_models:
                loaded = load_model(reference, device=str(self.loaded.device),
                                    trust_remote_code=self.trust_remote_code)
                self._other_models.clear()
                self._other_models[reference] = loaded
            return self._other_models[reference]

    def model_for(self, adapter: str | None, model: str | None = None) -> LoadedModel:
        """Return the base model (see `base_model`), or a copy with the named adapter merged in.

        The latest adapter copy is cached.
        """
        base = self.base_model(model)
        if not adapter:
            return base
        validate_adapter_name(adapter)
        folder = self.adapters_dir / adapter
        if not folder.is_dir():
            raise ValueError(f"no adapter named {adapter!r} in {self.adapters_dir}; refresh the adapter list.")
        # A retrained adapter of the same name has a newer config file, so it is loaded afresh.
        key = f"{base.reference}:{adapter}@{folder.stat().st_mtime_ns}"
        with self._adapter_guard:
            if key not in self._adapter_cache:
                loaded = load_with_adapter(base, folder)
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
