"""HTTP API: developer endpoints (contacts, consent, enrollments, events), problems, auth; see api.app."""
