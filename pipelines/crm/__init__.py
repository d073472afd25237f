"""Customer-service linkage: personalised messages for exception alerts, a transactional
outbox in the lake, an HTTP sender with retries and back-off, and a small local CRM receiver."""
