"""Tenants (buying organisations), their companies and warehouses, and the
per-request tenant context."""
