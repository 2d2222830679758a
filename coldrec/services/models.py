"""Which model serves: the base model (configured, or a bundled one chosen by the catalogue's
language or on the page), its fine-tuned versions, and switching between them."""

from __future__ import annotations

from ..access import Access
from ..config import Settings
from ..encoder import TextEncoder, bundled_source, load_encoder
from .. import language
from ..store import Store
from .state import State


class ModelService:
    """The serving model and the rules that pick it."""

    def __init__(self, state: State, settings: Settings, access: Access) -> None:
        self._state = state
        self.store = state.store
        self.settings = settings
        self._access = access

    @property
    def encoder(self) -> TextEncoder:
        """The model every session is served from."""
        return self._state.encoder

    def use_encoder(self, encoder: TextEncoder, actor: str | None = None, record: bool = True) -> None:
        """Serve every session from ``encoder`` from now on (a fine-tuned version or the base).

        Every model-derived value is dropped (:meth:`State.switch_encoder`); vectors come from the
        embedding cache keyed by the encoder's name, so switching back to a model already used
        embeds nothing. The switch is in the audit trail (``actor`` ``None``: the language rule or
        the CLI) unless ``record`` is false.
        """
        if record and encoder.name != self.encoder.name:
            self.store.record_audit(actor or "automatic", "model", subject="model in use", before=self.encoder.name,
                                    after=encoder.name)
        self._state.switch_encoder(encoder)

    def active_version(self) -> str:
        """The fine-tuned version serving ("" for the base model)."""
        return self.store.get_meta("model_version") or ""

    # -- the bundled encoder chosen by the catalogue's language (issue 20) -------------------
    def base_source(self) -> str | None:
        """The base model: ``COLDREC_MODEL``, else the bundled model chosen (see :meth:`encoder_choice`)."""
        return base_source(self.store, self.settings)

    def encoder_choice(self) -> dict[str, str]:
        """Which model serves and why: ``choice`` (``minilm``, ``multilingual``, ``both`` or ``configured``),
        ``source`` (``configured`` = ``COLDREC_MODEL``, ``setting`` = ``COLDREC_ENCODER``,
        ``override`` = picked on Categories & model, ``auto`` = the language rule) and ``reason``."""
        return encoder_choice(self.store, self.settings)

    def apply_language_rule(self, extra_texts: list[str] | None = None, store: bool = True) -> str | None:
        """Re-run the language rule (:mod:`coldrec.language`) on a sample of the stored titles (plus
        ``extra_texts``) when the choice is automatic, and switch the bundled model if it changes
        (vectors come from the cache keyed by model, so switching back embeds nothing). ``store``
        false switches this process only (``predict`` of a file it does not keep). Returns the choice,
        or ``None`` when a configured or chosen model makes the rule moot or there are no texts."""
        if self.encoder_choice()["source"] != "auto":
            return None
        texts = self.store.sample_titles(language.SAMPLE) + list(extra_texts or [])
        if not texts:
            return None
        mix = language.script_mix(texts)
        if store:
            self.store.set_meta("encoder_choice_reason", mix.reason)
            self.store.set_meta("encoder_choice", mix.choice)
        if mix.choice != _choice_of(self.encoder):
            self._switch_base(mix.choice, store=store)
        return mix.choice

    def set_encoder_choice(self, choice: str, actor: str | None = None) -> None:
        """Pick the bundled model on the page: ``minilm``, ``multilingual`` or ``both`` (kept for this
        workspace whatever its language), or ``auto`` (back to the language rule)."""
        self._access.require(actor, "model")
        if choice not in (*language.CHOICES, "auto"):
            raise ValueError(f"choice must be auto, {' or '.join(language.CHOICES)}, got {choice!r}")
        self.store.record_audit(actor, "model", subject="model choice", before=self.encoder_choice()["choice"], after=choice)
        if choice == "auto":
            self.store.set_meta("encoder_choice_source", "auto")
            self.store.set_meta("encoder_choice", "")  # the rule decides afresh
            if self.apply_language_rule() is None and _choice_of(self.encoder) != language.MINILM:
                self._switch_base(language.MINILM, actor=actor)  # nothing stored yet: the default
            return
        self.store.set_meta("encoder_choice_source", "override")
        self.store.set_meta("encoder_choice_reason", "chosen on Categories & model")
        self.store.set_meta("encoder_choice", choice)
        if choice != _choice_of(self.encoder):
            self._switch_base(choice, actor=actor)

    def _switch_base(self, choice: str, store: bool = True, actor: str | None = None) -> None:
        encoder = load_encoder(bundled_source(choice), self.settings.device)
        self.use_encoder(encoder, actor=actor, record=store)
        if store:
            self.store.set_meta("model_version", "")  # a fine-tuned version belongs to the model left


def encoder_choice(store: Store, settings: Settings) -> dict[str, str]:
    """See :meth:`ModelService.encoder_choice`."""
    if settings.model:
        return {"choice": "configured", "source": "configured", "reason": f"COLDREC_MODEL={settings.model}"}
    if settings.encoder in language.CHOICES:
        return {"choice": settings.encoder, "source": "setting", "reason": f"COLDREC_ENCODER={settings.encoder}"}
    source = store.get_meta("encoder_choice_source") or "auto"
    choice = store.get_meta("encoder_choice") or language.MINILM
    reason = store.get_meta("encoder_choice_reason") or "no items yet: the default"
    return {"choice": choice, "source": source, "reason": reason}


def base_source(store: Store, settings: Settings) -> str | None:
    """What :func:`~coldrec.encoder.load_encoder` loads as the workspace's base model."""
    choice = encoder_choice(store, settings)
    return settings.model if choice["source"] == "configured" else bundled_source(choice["choice"])


def _choice_of(encoder: TextEncoder) -> str:
    """Which bundled model an encoder is (MiniLM for it, its fine-tuned versions and test doubles)."""
    backend = getattr(encoder, "backend", "")
    return {"numpy": language.MULTILINGUAL, "pair": language.BOTH}.get(backend, language.MINILM)
