"""Background workers (dramatiq): ERP sync, intake, exception detection and
notifications. The outbox they drain is written by the portal's services; actors
take ids, reload, set the tenant for row-level security and are idempotent."""
