"""The stream domain: live carrier events, alerts and the CRM outbox, and the marts they feed."""
