"""Built-in stages. Each registers itself (``registry.register_stage``) when imported here."""

from streams.stages import (  # noqa: F401 - imported for their registrations, in pipeline order
    drop_old_events,
    event_restrictions,
    normalize,
    persons,
    prepare,
    resolve_project,
    validate,
)
